# S3 "Object Created" under the input prefix -> EventBridge rule -> API destination POST https://<domain>/events.
# The connection sends the shared secret (read from Secrets Manager) as X-Modelfn-Event-Secret; failed
# deliveries are retried for up to a day, then parked in an SQS dead-letter queue.

locals {
  events_on = var.events != null
}

resource "aws_s3_bucket_notification" "eventbridge" {
  count       = local.events_on && var.manage_bucket_notification ? 1 : 0
  bucket      = local.bucket
  eventbridge = true
}

resource "aws_cloudwatch_event_rule" "uploads" {
  count       = local.events_on ? 1 : 0
  name        = "${var.name}-uploads"
  description = "Objects created under s3://${local.bucket}/${var.events.input_prefix}"
  tags        = var.labels
  event_pattern = jsonencode({
    source        = ["aws.s3"]
    "detail-type" = ["Object Created"]
    detail = {
      bucket = { name = [local.bucket] }
      object = { key = [{ prefix = var.events.input_prefix }] }
    }
  })
}

data "aws_secretsmanager_secret_version" "events" {
  count     = local.events_on ? 1 : 0
  secret_id = var.events_secret_arn
}

resource "aws_cloudwatch_event_connection" "events" {
  count              = local.events_on ? 1 : 0
  name               = "${var.name}-events"
  description        = "Shared secret header for modelfn ${var.name}"
  authorization_type = "API_KEY"

  auth_parameters {
    api_key {
      key   = "X-Modelfn-Event-Secret"
      value = data.aws_secretsmanager_secret_version.events[0].secret_string
    }
  }
}

resource "aws_cloudwatch_event_api_destination" "events" {
  count                            = local.events_on ? 1 : 0
  name                             = "${var.name}-events"
  description                      = "modelfn ${var.name} POST /events"
  invocation_endpoint              = "${local.url}/events"
  http_method                      = "POST"
  invocation_rate_limit_per_second = max(1, var.max_instances * var.concurrency)
  connection_arn                   = aws_cloudwatch_event_connection.events[0].arn
}

resource "aws_sqs_queue" "events_dlq" {
  count                     = local.events_on ? 1 : 0
  name                      = "${var.name}-events-dlq"
  message_retention_seconds = 1209600
  sqs_managed_sse_enabled   = true
  tags                      = var.labels
}

resource "aws_sqs_queue_policy" "events_dlq" {
  count     = local.events_on ? 1 : 0
  queue_url = aws_sqs_queue.events_dlq[0].id
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [{
      Effect    = "Allow"
      Principal = { Service = "events.amazonaws.com" }
      Action    = "sqs:SendMessage"
      Resource  = aws_sqs_queue.events_dlq[0].arn
      Condition = { ArnEquals = { "aws:SourceArn" = aws_cloudwatch_event_rule.uploads[0].arn } }
    }]
  })
}

resource "aws_iam_role" "events" {
  count = local.events_on ? 1 : 0
  name  = "${var.name}-events"
  tags  = var.labels
  assume_role_policy = jsonencode({
    Version = "2012-10-17"
    Statement = [{
      Effect    = "Allow"
      Action    = "sts:AssumeRole"
      Principal = { Service = "events.amazonaws.com" }
    }]
  })
}

resource "aws_iam_role_policy" "events" {
  count = local.events_on ? 1 : 0
  name  = "invoke-api-destination"
  role  = aws_iam_role.events[0].id
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [{
      Effect   = "Allow"
      Action   = "events:InvokeApiDestination"
      Resource = aws_cloudwatch_event_api_destination.events[0].arn
    }]
  })
}

resource "aws_cloudwatch_event_target" "events" {
  count    = local.events_on ? 1 : 0
  rule     = aws_cloudwatch_event_rule.uploads[0].name
  arn      = aws_cloudwatch_event_api_destination.events[0].arn
  role_arn = aws_iam_role.events[0].arn

  # Cold starts answer 503 for a few minutes: retry with EventBridge's backoff for up to a day.
  retry_policy {
    maximum_event_age_in_seconds = 86400
    maximum_retry_attempts       = 185
  }

  dead_letter_config {
    arn = aws_sqs_queue.events_dlq[0].arn
  }
}
