# Contract of the ECS Fargate module, checked at plan time with a mocked provider.
mock_provider "aws" {
  mock_resource "aws_lb" {
    defaults = {
      arn_suffix = "app/iris/0123456789abcdef"
      dns_name   = "iris-123.eu-west-1.elb.amazonaws.com"
    }
  }
  mock_resource "aws_lb_target_group" {
    defaults = {
      arn_suffix = "targetgroup/iris/0123456789abcdef"
    }
  }
}

variables {
  region          = "eu-west-1"
  name            = "iris"
  image           = "123456789012.dkr.ecr.eu-west-1.amazonaws.com/modelfn:0.1.0"
  model_uri       = "s3://models-bucket/team/iris@prod"
  vpc_id          = "vpc-1"
  alb_subnet_ids  = ["subnet-a", "subnet-b"]
  task_subnet_ids = ["subnet-c"]
  certificate_arn = "arn:aws:acm:eu-west-1:123456789012:certificate/abc"
  domain_name     = "iris.example.com"
}

run "scales_to_zero" {
  command = plan

  assert {
    condition     = aws_appautoscaling_target.this.min_capacity == 0 && aws_ecs_service.this.desired_count == 0
    error_message = "min capacity and the initial desired count must default to 0"
  }
  assert {
    condition = anytrue([for q in aws_cloudwatch_metric_alarm.from_zero.metric_query :
    try(q.metric[0].metric_name == "HTTPCode_ELB_503_Count" && q.metric[0].namespace == "AWS/ApplicationELB", false)])
    error_message = "scale from zero must watch the ALB's own 503s"
  }
  assert {
    condition = (strcontains(one([for q in aws_cloudwatch_metric_alarm.from_zero.metric_query : q.expression if q.return_data == true]), "FILL(running, 0) == 0")
    && strcontains(one([for q in aws_cloudwatch_metric_alarm.to_zero[0].metric_query : q.expression if q.return_data == true]), "FILL(running, 0) > 0"))
    error_message = "from-zero fires only with no running task and to-zero only with one, so they cannot fight"
  }
  assert {
    condition     = aws_cloudwatch_metric_alarm.to_zero[0].treat_missing_data == "notBreaching" && aws_cloudwatch_metric_alarm.from_zero.treat_missing_data == "notBreaching"
    error_message = "missing data (a service at zero) must not keep the to-zero alarm firing"
  }
  assert {
    condition     = aws_appautoscaling_policy.from_zero.step_scaling_policy_configuration[0].adjustment_type == "ExactCapacity" && one(aws_appautoscaling_policy.from_zero.step_scaling_policy_configuration[0].step_adjustment).scaling_adjustment == 1
    error_message = "scale from zero must set the capacity to 1"
  }
  assert {
    condition     = one(aws_appautoscaling_policy.to_zero[0].step_scaling_policy_configuration[0].step_adjustment).scaling_adjustment == 0 && aws_cloudwatch_metric_alarm.to_zero[0].evaluation_periods == 15
    error_message = "scale to zero after 15 idle minutes by default"
  }
  assert {
    condition     = aws_appautoscaling_policy.requests.target_tracking_scaling_policy_configuration[0].customized_metric_specification[0].metric_name == "RequestCountPerTarget"
    error_message = "target tracking on requests per target between 1 and N"
  }
}

run "probes_and_container" {
  command = apply # security group ids exist only after (mocked) apply

  assert {
    condition     = aws_lb_target_group.this.health_check[0].path == "/readyz" && aws_lb_target_group.this.port == 8080
    error_message = "target group health check must be GET /readyz on 8080"
  }
  assert {
    condition     = strcontains(jsondecode(aws_ecs_task_definition.this.container_definitions)[1].healthCheck.command[3], "/healthz")
    error_message = "the container health check must probe /healthz"
  }
  assert {
    condition     = jsondecode(aws_ecs_task_definition.this.container_definitions)[1].logConfiguration.logDriver == "awslogs" && aws_cloudwatch_log_group.this.retention_in_days == 30
    error_message = "logs go to a log group with retention"
  }
  assert {
    condition     = aws_lb_listener.http_redirect.default_action[0].redirect[0].protocol == "HTTPS" && aws_lb_listener.https.protocol == "HTTPS"
    error_message = "HTTPS listener plus HTTP->HTTPS redirect"
  }
  assert {
    condition     = aws_vpc_security_group_ingress_rule.tasks_from_alb.referenced_security_group_id == aws_security_group.alb.id && aws_vpc_security_group_ingress_rule.tasks_from_alb.security_group_id == aws_security_group.tasks.id && aws_vpc_security_group_ingress_rule.tasks_from_alb.cidr_ipv4 == null
    error_message = "tasks admit only the load balancer's security group"
  }
  assert {
    condition     = aws_lb_listener.https.default_action[0].type == "fixed-response" && aws_lb_listener.https.default_action[0].fixed_response[0].status_code == "404"
    error_message = "the HTTPS listener's default action is a fixed 404"
  }
  assert {
    condition = alltrue([for r in aws_lb_listener_rule.service :
    anytrue([for c in r.condition : try(c.host_header[0].values == toset(["iris.example.com"]), false)])])
    error_message = "only the service's host is forwarded"
  }
  assert {
    condition = (jsondecode(aws_ecs_task_definition.this.container_definitions)[0].user == "0"
      && jsondecode(aws_ecs_task_definition.this.container_definitions)[0].command == ["1777", "/tmp"]
    && jsondecode(aws_ecs_task_definition.this.container_definitions)[1].dependsOn[0].condition == "SUCCESS")
    error_message = "an init container makes the Fargate /tmp volume writable for uid 10001 before the service starts"
  }
  assert {
    condition     = tonumber(output.env["KEEPALIVE_SECONDS"]) > aws_lb.this.idle_timeout && output.env["THREADS"] == "12"
    error_message = "Gunicorn keep-alive must exceed the ALB idle timeout; THREADS = concurrency + 4"
  }
}

run "env_names_match_settings" {
  command = plan

  variables {
    env               = { LOG_LEVEL = "debug" }
    events_secret_arn = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:modelfn-AbCdEf"
    events = {
      input_prefix  = "inputs/"
      output_prefix = "outputs/"
    }
  }

  assert {
    condition = toset([for e in jsondecode(aws_ecs_task_definition.this.container_definitions)[1].environment : e.name]) == toset([
      "MODEL_URI", "PORT", "AWS_REGION", "DEVICE", "LOAD_MODE", "MODEL_POLL_SECONDS", "WORKERS", "THREADS", "TIMEOUT", "LOG_LEVEL",
      "EVENTS_INPUT_URI", "EVENTS_OUTPUT_URI", "KEEPALIVE_SECONDS",
    ])
    error_message = "unexpected env var names"
  }
  assert {
    condition     = [for s in jsondecode(aws_ecs_task_definition.this.container_definitions)[1].secrets : s.name] == ["EVENTS_SECRET"]
    error_message = "the events secret reaches the task as EVENTS_SECRET from Secrets Manager"
  }
  assert {
    condition     = output.env["EVENTS_OUTPUT_URI"] == "s3://models-bucket/outputs/" && output.env["PORT"] == "8080"
    error_message = "event URIs point at the bucket; the container listens on 8080"
  }
}

run "iam_is_read_only_on_model_prefix" {
  command = plan

  assert {
    condition     = jsondecode(aws_iam_role_policy.task.policy).Statement[*].Action == [["s3:GetObject"], ["s3:ListBucket"]]
    error_message = "without events the task role only reads"
  }
  assert {
    condition     = jsondecode(aws_iam_role_policy.task.policy).Statement[0].Resource == ["arn:aws:s3:::models-bucket/team/iris/*"]
    error_message = "reads are limited to the model prefix"
  }
  assert {
    condition     = jsondecode(aws_iam_role_policy.task.policy).Statement[1].Resource == ["arn:aws:s3:::models-bucket"] && !can(jsondecode(aws_iam_role_policy.task.policy).Statement[1].Condition)
    error_message = "ListBucket on the bucket without an s3:prefix condition (GetObject needs it for 404s)"
  }
}

run "eventbridge_to_events_endpoint" {
  command = plan

  variables {
    events_secret_arn = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:modelfn-AbCdEf"
    events = {
      input_prefix  = "inputs/"
      output_prefix = "outputs/"
    }
  }

  assert {
    condition = jsondecode(aws_cloudwatch_event_rule.uploads[0].event_pattern) == {
      source        = ["aws.s3"]
      "detail-type" = ["Object Created"]
      detail        = { bucket = { name = ["models-bucket"] }, object = { key = [{ prefix = "inputs/" }] } }
    }
    error_message = "rule must match Object Created under the input prefix of the bucket"
  }
  assert {
    condition     = aws_cloudwatch_event_api_destination.events[0].invocation_endpoint == "https://iris.example.com/events" && aws_cloudwatch_event_api_destination.events[0].http_method == "POST"
    error_message = "events must be POSTed to https://<domain>/events"
  }
  assert {
    condition     = aws_cloudwatch_event_connection.events[0].auth_parameters[0].api_key[0].key == "X-Modelfn-Event-Secret"
    error_message = "the connection must send the shared secret header"
  }
  assert {
    condition     = aws_s3_bucket_notification.eventbridge[0].eventbridge && length(aws_cloudwatch_event_target.events[0].dead_letter_config) == 1 && aws_cloudwatch_event_target.events[0].retry_policy[0].maximum_retry_attempts > 0
    error_message = "bucket notifications on, retries and a dead-letter queue"
  }
  assert {
    condition     = jsondecode(aws_iam_role_policy.task.policy).Statement[3].Action == ["s3:GetObject", "s3:PutObject", "s3:AbortMultipartUpload"] && jsondecode(aws_iam_role_policy.task.policy).Statement[3].Resource == ["arn:aws:s3:::models-bucket/outputs/*"]
    error_message = "outputs are written and read back (idempotency markers) under the output prefix only"
  }
}

run "fargate_refuses_gpu" {
  command = plan

  variables {
    gpu = "nvidia-l4"
  }

  expect_failures = [var.gpu]
}

run "events_need_a_secret" {
  command = plan

  variables {
    events = {
      input_prefix  = "inputs/"
      output_prefix = "outputs/"
    }
  }

  expect_failures = [var.events_secret_arn]
}

run "fargate_sizes" {
  command = plan

  variables {
    cpu        = 1
    memory_mib = 16384
  }

  expect_failures = [var.memory_mib]
}
