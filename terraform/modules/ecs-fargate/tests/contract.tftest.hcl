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
    condition     = aws_cloudwatch_metric_alarm.from_zero.metric_name == "HTTPCode_ELB_503_Count" && aws_cloudwatch_metric_alarm.from_zero.namespace == "AWS/ApplicationELB"
    error_message = "scale from zero must watch the ALB's own 503s"
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
    condition     = strcontains(jsondecode(aws_ecs_task_definition.this.container_definitions)[0].healthCheck.command[3], "/healthz")
    error_message = "the container health check must probe /healthz"
  }
  assert {
    condition     = jsondecode(aws_ecs_task_definition.this.container_definitions)[0].logConfiguration.logDriver == "awslogs" && aws_cloudwatch_log_group.this.retention_in_days == 30
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
    condition = toset([for e in jsondecode(aws_ecs_task_definition.this.container_definitions)[0].environment : e.name]) == toset([
      "MODEL_URI", "PORT", "AWS_REGION", "DEVICE", "LOAD_MODE", "WORKERS", "THREADS", "TIMEOUT", "LOG_LEVEL",
      "EVENTS_INPUT_URI", "EVENTS_OUTPUT_URI",
    ])
    error_message = "unexpected env var names"
  }
  assert {
    condition     = [for s in jsondecode(aws_ecs_task_definition.this.container_definitions)[0].secrets : s.name] == ["EVENTS_SECRET"]
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
    condition     = jsondecode(aws_iam_role_policy.task.policy).Statement[1].Condition.StringLike["s3:prefix"] == ["team/iris/*"]
    error_message = "listing is limited to the model prefix"
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
    condition     = jsondecode(aws_iam_role_policy.task.policy).Statement[3].Action == ["s3:PutObject"] && jsondecode(aws_iam_role_policy.task.policy).Statement[3].Resource == ["arn:aws:s3:::models-bucket/outputs/*"]
    error_message = "with events the task may write the output prefix only"
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
