locals {
  bucket = regex("^s3://([^/]+)/", var.model_uri)[0]
}

resource "aws_s3_bucket" "models" {
  #checkov:skip=CKV_AWS_18:server access logs need a separate log bucket; CloudTrail data events are the recommended audit trail
  #checkov:skip=CKV_AWS_144:cross-region replication is a disaster-recovery choice, not a default
  #checkov:skip=CKV_AWS_145:SSE-S3 (AES256) is on; a customer KMS key is optional and adds per-request KMS cost
  #checkov:skip=CKV2_AWS_62:event notifications are managed by the module (EventBridge) when events are enabled
  #checkov:skip=CKV2_AWS_61:model versions are immutable artifacts; expiring them would break aliases
  count  = var.create_bucket ? 1 : 0
  bucket = local.bucket
}

resource "aws_s3_bucket_public_access_block" "models" {
  count                   = var.create_bucket ? 1 : 0
  bucket                  = aws_s3_bucket.models[0].id
  block_public_acls       = true
  block_public_policy     = true
  ignore_public_acls      = true
  restrict_public_buckets = true
}

resource "aws_s3_bucket_versioning" "models" {
  count  = var.create_bucket ? 1 : 0
  bucket = aws_s3_bucket.models[0].id

  versioning_configuration {
    status = "Enabled"
  }
}

resource "aws_s3_bucket_server_side_encryption_configuration" "models" {
  count  = var.create_bucket ? 1 : 0
  bucket = aws_s3_bucket.models[0].id

  rule {
    apply_server_side_encryption_by_default {
      sse_algorithm = "AES256"
    }
  }
}

module "service" {
  # First deployment: apply with deploy_service = false (storage only), publish the model, then apply
  # again with the default; the first revision is then ready at once (docs/deploy.md).
  count  = var.deploy_service ? 1 : 0
  source = "../modules/ecs-fargate"

  region                  = var.region
  name                    = var.name
  image                   = var.image
  model_uri               = var.model_uri
  env                     = var.env
  secrets                 = var.secrets
  cpu                     = var.cpu
  memory_mib              = var.memory_mib
  min_instances           = var.min_instances
  max_instances           = var.max_instances
  concurrency             = var.concurrency
  request_timeout_seconds = var.request_timeout_seconds
  gpu                     = var.gpu
  events                  = var.events
  labels                  = var.labels
  vpc_id                  = var.vpc_id
  alb_subnet_ids          = var.alb_subnet_ids
  task_subnet_ids         = var.task_subnet_ids
  assign_public_ip        = var.assign_public_ip
  certificate_arn         = var.certificate_arn
  domain_name             = var.domain_name
  allowed_cidrs           = var.allowed_cidrs
  idle_minutes_to_zero    = var.idle_minutes_to_zero
  log_retention_days      = var.log_retention_days
  events_secret_arn       = var.events_secret_arn
  # aws_s3_bucket_notification replaces the bucket's whole notification configuration: only a bucket this
  # stack created is safe to take over by default.
  manage_bucket_notification = coalesce(var.manage_bucket_notification, var.create_bucket)

  depends_on = [aws_s3_bucket.models]
}
