# Batch inference at any size: an ECS task definition running the same image's `modelfn batch run`,
# started by the service (POST /events) with RunTask, one Fargate task per shard (`--shard I/N` in
# the command override). Off unless var.batch_jobs is set.

locals {
  batch_on     = var.batch_jobs != null && var.events != null
  batch_family = "${var.name}-batch"
  batch_input  = try(var.events.input_prefix, "")
  batch_output = try(var.events.output_prefix, "")
  batch_env = local.batch_on ? {
    BATCH_LAUNCHER            = "ecs"
    BATCH_JOB_NAME            = local.batch_family # RunTask picks the latest ACTIVE revision
    BATCH_ECS_CLUSTER         = aws_ecs_cluster.this.name
    BATCH_ECS_SUBNETS         = join(",", var.task_subnet_ids)
    BATCH_ECS_SECURITY_GROUPS = aws_security_group.batch[0].id
    BATCH_ECS_PUBLIC_IP       = tostring(var.assign_public_ip)
    BATCH_CONTAINER_NAME      = "modelfn"
    BATCH_INLINE_MAX_BYTES    = tostring(var.batch_jobs.inline_max_mib * 1048576)
    BATCH_TASK_TARGET_BYTES   = tostring(var.batch_jobs.task_target_mib * 1048576)
    BATCH_MAX_TASKS           = tostring(var.batch_jobs.max_tasks)
  } : {}
  batch_task_env = local.batch_on ? merge(local.default_env, var.env, {
    MODEL_URI           = var.model_uri
    AWS_REGION          = var.region
    BATCH_OUTPUT_FORMAT = var.batch_jobs.output_format
  }) : {}

  # A shard reads the model and its input, lists input and output prefixes, writes only outputs.
  batch_statements = [
    {
      Sid      = "ReadModelAndInputs"
      Effect   = "Allow"
      Action   = ["s3:GetObject", "s3:GetObjectVersion"]
      Resource = ["${local.bucket_arn}/${local.model_prefix}*", "${local.bucket_arn}/${local.batch_input}*"]
    },
    {
      Sid       = "ListOwnPrefixes"
      Effect    = "Allow"
      Action    = ["s3:ListBucket"]
      Resource  = [local.bucket_arn]
      Condition = { StringLike = { "s3:prefix" = ["${local.model_prefix}*", "${local.batch_input}*", "${local.batch_output}*"] } }
    },
    {
      Sid      = "WriteOutputs"
      Effect   = "Allow"
      Action   = ["s3:GetObject", "s3:PutObject"]
      Resource = ["${local.bucket_arn}/${local.batch_output}*"]
    },
  ]
}

resource "aws_iam_role" "batch" {
  count              = local.batch_on ? 1 : 0
  name               = "${var.name}-batch"
  assume_role_policy = local.ecs_tasks_assume
  tags               = var.labels
}

resource "aws_iam_role_policy" "batch" {
  count  = local.batch_on ? 1 : 0
  name   = "shard-access"
  role   = aws_iam_role.batch[0].id
  policy = jsonencode({ Version = "2012-10-17", Statement = local.batch_statements })
}

resource "aws_security_group" "batch" {
  #checkov:skip=CKV2_AWS_5:attached to each batch task at RunTask time by the service (BATCH_ECS_SECURITY_GROUPS)
  count       = local.batch_on ? 1 : 0
  name        = "${var.name}-batch"
  description = "modelfn ${var.name}: batch tasks admit nothing and reach HTTPS only"
  vpc_id      = var.vpc_id
  tags        = var.labels
}

resource "aws_vpc_security_group_egress_rule" "batch_https" {
  count             = local.batch_on ? 1 : 0
  security_group_id = aws_security_group.batch[0].id
  description       = "HTTPS to S3, ECR and CloudWatch Logs"
  cidr_ipv4         = "0.0.0.0/0"
  ip_protocol       = "tcp"
  from_port         = 443
  to_port           = 443
}

resource "aws_ecs_task_definition" "batch" {
  count                    = local.batch_on ? 1 : 0
  family                   = local.batch_family
  requires_compatibilities = ["FARGATE"]
  network_mode             = "awsvpc"
  cpu                      = tostring(var.batch_jobs.cpu * 1024)
  memory                   = tostring(var.batch_jobs.memory_mib)
  execution_role_arn       = aws_iam_role.execution.arn
  task_role_arn            = aws_iam_role.batch[0].arn
  tags                     = var.labels
  # Same read-only root and root-owned /tmp volume as the service: the same init container opens /tmp up.
  container_definitions = jsonencode([local.tmp_init, {
    name                   = "modelfn"
    image                  = var.image
    essential              = true
    readonlyRootFilesystem = true
    entryPoint             = ["python", "-m", "function.cli", "batch", "run"]
    environment            = [for k, v in local.batch_task_env : { name = k, value = v }]
    mountPoints            = [{ sourceVolume = "tmp", containerPath = "/tmp", readOnly = false }]
    dependsOn              = [{ containerName = "tmp-permissions", condition = "SUCCESS" }]
    logConfiguration = {
      logDriver = "awslogs"
      options = {
        awslogs-group         = aws_cloudwatch_log_group.this.name
        awslogs-region        = var.region
        awslogs-stream-prefix = "batch"
      }
    }
  }])

  runtime_platform {
    operating_system_family = "LINUX"
    cpu_architecture        = "X86_64"
  }

  ephemeral_storage {
    size_in_gib = var.batch_jobs.ephemeral_storage_gib # parts are staged in /tmp before one upload
  }

  volume {
    name = "tmp"
  }
}

# The service may start this task definition on its own cluster and hand it its two roles.
resource "aws_iam_role_policy" "task_runs_batch" {
  count = local.batch_on ? 1 : 0
  name  = "run-batch-tasks"
  role  = aws_iam_role.task.id
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [
      {
        Sid       = "RunBatchTasks"
        Effect    = "Allow"
        Action    = ["ecs:RunTask"]
        Resource  = ["${aws_ecs_task_definition.batch[0].arn_without_revision}:*"]
        Condition = { ArnEquals = { "ecs:cluster" = aws_ecs_cluster.this.arn } }
      },
      {
        Sid       = "PassBatchRoles"
        Effect    = "Allow"
        Action    = ["iam:PassRole"]
        Resource  = [aws_iam_role.batch[0].arn, aws_iam_role.execution.arn]
        Condition = { StringEquals = { "iam:PassedToService" = "ecs-tasks.amazonaws.com" } }
      },
    ]
  })
}
