locals {
  ecs_tasks_assume = jsonencode({
    Version = "2012-10-17"
    Statement = [{
      Effect    = "Allow"
      Action    = "sts:AssumeRole"
      Principal = { Service = "ecs-tasks.amazonaws.com" }
    }]
  })

  # S3 answers 403 instead of 404 for a missing key unless the caller may s3:ListBucket the bucket,
  # and a GetObject request carries no s3:prefix, so a prefix-conditioned ListBucket does not count.
  # The loader needs real 404s (`@prod` tries the version key first; markers are read before they exist),
  # so ListBucket is on the bucket as a whole: key names, never contents.
  list_bucket = {
    Sid      = "ListBucketFor404s"
    Effect   = "Allow"
    Action   = ["s3:ListBucket"]
    Resource = [local.bucket_arn]
  }

  # What the function itself may do: read the model prefix; with events read inputs, and read and write
  # outputs (results, error reports and the idempotency markers it reads back).
  task_statements = concat(
    [
      {
        Sid      = "ReadModel"
        Effect   = "Allow"
        Action   = ["s3:GetObject"]
        Resource = ["${local.bucket_arn}/${local.model_prefix}*"]
      },
      local.list_bucket,
    ],
    var.events == null ? [] : [
      {
        Sid      = "ReadInputs"
        Effect   = "Allow"
        Action   = ["s3:GetObject"]
        Resource = ["${local.bucket_arn}/${var.events.input_prefix}*"]
      },
      {
        Sid      = "ReadWriteOutputs"
        Effect   = "Allow"
        Action   = ["s3:GetObject", "s3:PutObject", "s3:AbortMultipartUpload"]
        Resource = ["${local.bucket_arn}/${var.events.output_prefix}*"]
      },
    ],
  )

  # What `modelfn publish` needs for this model (attach to the publishing user or CI role).
  publisher_statements = [
    {
      Sid      = "PublishModel"
      Effect   = "Allow"
      Action   = ["s3:GetObject", "s3:PutObject", "s3:AbortMultipartUpload"]
      Resource = ["${local.bucket_arn}/${local.model_prefix}*"]
    },
    local.list_bucket,
  ]
}

# Execution role: pull the image, write logs, resolve the secrets into env vars.
resource "aws_iam_role" "execution" {
  name               = "${var.name}-execution"
  assume_role_policy = local.ecs_tasks_assume
  tags               = var.labels
}

resource "aws_iam_role_policy_attachment" "execution" {
  role       = aws_iam_role.execution.name
  policy_arn = "arn:aws:iam::aws:policy/service-role/AmazonECSTaskExecutionRolePolicy"
}

resource "aws_iam_role_policy" "execution_secrets" {
  count = length(local.secret_arns) > 0 ? 1 : 0
  name  = "secrets"
  role  = aws_iam_role.execution.id
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [{
      Effect   = "Allow"
      Action   = ["secretsmanager:GetSecretValue"]
      Resource = [for arn in local.secret_arns : "${arn}*"]
    }]
  })
}

resource "aws_iam_role" "task" {
  name               = "${var.name}-task"
  assume_role_policy = local.ecs_tasks_assume
  tags               = var.labels
}

resource "aws_iam_role_policy" "task" {
  name   = "model-access"
  role   = aws_iam_role.task.id
  policy = jsonencode({ Version = "2012-10-17", Statement = local.task_statements })
}
