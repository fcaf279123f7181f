locals {
  model_uri_re = "^s3://(?P<bucket>[a-z0-9][a-z0-9.-]{1,61}[a-z0-9])/(?:(?P<prefix>[^@]+)/)?(?P<model>[a-z0-9][a-z0-9._-]{0,127})(?:@(?P<ref>[A-Za-z0-9][A-Za-z0-9._+-]*))?$"
  model        = regex(local.model_uri_re, var.model_uri)
  bucket       = local.model.bucket
  bucket_arn   = "arn:aws:s3:::${local.bucket}"
  # Everything the loader reads for this model (manifest, aliases, versions) lives under this prefix.
  model_prefix = "${join("/", compact([local.model.prefix, local.model.model]))}/"
  url          = "https://${var.domain_name}"

  # Names the module owns; var.env may not override them.
  managed_env = ["MODEL_URI", "PORT", "AWS_REGION", "EVENTS_INPUT_URI", "EVENTS_OUTPUT_URI", "EVENTS_SECRET", "THREADS", "KEEPALIVE_SECONDS"]

  # The ALB's idle timeout must cover a whole request (it counts silence, and a prediction sends nothing
  # until it is done), and Gunicorn's keep-alive must outlast it so the ALB always closes first (no 502s).
  alb_idle_timeout = var.request_timeout_seconds
  serving_env = {
    # One worker; `concurrency` requests at most, plus spare threads so probes always find one.
    THREADS           = tostring(var.concurrency + 4)
    KEEPALIVE_SECONDS = tostring(local.alb_idle_timeout + 5)
  }

  default_env = {
    DEVICE    = "cpu"
    LOAD_MODE = "eager"
    WORKERS   = "1"
    TIMEOUT   = tostring(var.request_timeout_seconds)
    # An alias move (promote, canary, rollback) reaches every instance within this; its event reaches one.
    MODEL_POLL_SECONDS = "30"
  }
  events_env = var.events == null ? {} : {
    EVENTS_INPUT_URI  = "s3://${local.bucket}/${var.events.input_prefix}"
    EVENTS_OUTPUT_URI = "s3://${local.bucket}/${var.events.output_prefix}"
  }
  env = merge(local.default_env, var.env, local.serving_env, {
    MODEL_URI  = var.model_uri
    PORT       = "8080"
    AWS_REGION = var.region # SDK-standard name read by boto3
  }, local.events_env, local.batch_env)

  secret_env = merge(var.secrets, var.events == null ? {} : { EVENTS_SECRET = var.events_secret_arn })
  # Secrets Manager ARNs may carry a ':json-key:version-stage:version-id' suffix after the secret name.
  secret_arns = distinct([for arn in values(local.secret_env) : regex("^(arn:[^:]+:secretsmanager:[^:]+:[^:]+:secret:[^:]+)", arn)[0]])

  # Fargate bind mounts are root-owned 0755 and the image runs as uid 10001 (aws/containers-roadmap#863):
  # a short-lived root container opens /tmp up (sticky, like a normal /tmp) before the service starts.
  tmp_init = {
    name                   = "tmp-permissions"
    image                  = var.image
    essential              = false
    user                   = "0"
    readonlyRootFilesystem = true
    entryPoint             = ["/bin/chmod"]
    command                = ["1777", "/tmp"]
    mountPoints            = [{ sourceVolume = "tmp", containerPath = "/tmp", readOnly = false }]
    logConfiguration       = local.log_configuration
  }

  log_configuration = {
    logDriver = "awslogs"
    options = {
      awslogs-group         = aws_cloudwatch_log_group.this.name
      awslogs-region        = var.region
      awslogs-stream-prefix = "modelfn"
    }
  }

  container = {
    name                   = "modelfn"
    image                  = var.image
    essential              = true
    readonlyRootFilesystem = true
    portMappings           = [{ containerPort = 8080, protocol = "tcp" }]
    environment            = [for k, v in local.env : { name = k, value = v }]
    secrets                = [for k, v in local.secret_env : { name = k, valueFrom = v }]
    mountPoints            = [{ sourceVolume = "tmp", containerPath = "/tmp", readOnly = false }]
    dependsOn              = [{ containerName = "tmp-permissions", condition = "SUCCESS" }]
    stopTimeout            = 30 # Gunicorn's GRACEFUL_TIMEOUT (25 s) fits inside
    healthCheck = {
      # The image has Python but no curl; liveness only (readiness is the target group's /readyz).
      command     = ["CMD", "python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=3)"]
      interval    = 15
      timeout     = 5
      retries     = 3
      startPeriod = 60
    }
    logConfiguration = local.log_configuration
  }
}

resource "aws_ecs_cluster" "this" {
  name = var.name
  tags = var.labels

  setting {
    name  = "containerInsights"
    value = "enabled"
  }
}

resource "aws_cloudwatch_log_group" "this" {
  #checkov:skip=CKV_AWS_158:KMS is optional (log_kms_key_arn); CloudWatch Logs encrypts at rest by default
  #checkov:skip=CKV_AWS_338:retention is the user's choice (log_retention_days, default 30 days); a year is not a sane default for inference logs
  name              = "/modelfn/${var.name}"
  retention_in_days = var.log_retention_days
  kms_key_id        = var.log_kms_key_arn
  tags              = var.labels
}

resource "aws_ecs_task_definition" "this" {
  family                   = var.name
  requires_compatibilities = ["FARGATE"]
  network_mode             = "awsvpc"
  cpu                      = tostring(var.cpu * 1024)
  memory                   = tostring(var.memory_mib)
  execution_role_arn       = aws_iam_role.execution.arn
  task_role_arn            = aws_iam_role.task.arn
  container_definitions    = jsonencode([local.tmp_init, local.container])
  tags                     = var.labels

  runtime_platform {
    operating_system_family = "LINUX"
    cpu_architecture        = "X86_64"
  }

  # Writable scratch (model cache, Gunicorn heartbeat) on the task's ephemeral storage; the root fs is read-only.
  volume {
    name = "tmp"
  }
}

resource "aws_ecs_service" "this" {
  name                              = var.name
  cluster                           = aws_ecs_cluster.this.id
  task_definition                   = aws_ecs_task_definition.this.arn
  launch_type                       = "FARGATE"
  desired_count                     = var.min_instances
  health_check_grace_period_seconds = 300
  propagate_tags                    = "SERVICE"
  tags                              = var.labels

  network_configuration {
    subnets          = var.task_subnet_ids
    security_groups  = [aws_security_group.tasks.id]
    assign_public_ip = var.assign_public_ip
  }

  load_balancer {
    target_group_arn = aws_lb_target_group.this.arn
    container_name   = "modelfn"
    container_port   = 8080
  }

  deployment_circuit_breaker {
    enable   = true
    rollback = true
  }

  lifecycle {
    # Application Auto Scaling owns the task count (0..max_instances).
    ignore_changes = [desired_count]
  }

  depends_on = [aws_lb_listener.https, aws_lb_listener_rule.service]
}
