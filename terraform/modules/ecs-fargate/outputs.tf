output "url" {
  description = "HTTPS endpoint of the service (domain_name, served by the load balancer)."
  value       = local.url
}

output "service_identity" {
  description = "ARN of the task role the container runs as."
  value       = aws_iam_role.task.arn
}

output "bucket" {
  description = "Bucket holding the model (and the event inputs/outputs)."
  value       = local.bucket
}

output "model_prefix" {
  description = "Object prefix the task role may read."
  value       = local.model_prefix
}

output "load_balancer_dns_name" {
  description = "Point domain_name at this name (CNAME or Route 53 alias)."
  value       = aws_lb.this.dns_name
}

output "cluster_name" {
  description = "ECS cluster name."
  value       = aws_ecs_cluster.this.name
}

output "service_name" {
  description = "ECS service name."
  value       = aws_ecs_service.this.name
}

output "env" {
  description = "Plain environment variables set on the container (secrets excluded)."
  value       = local.env
}

output "events_dead_letter_queue_url" {
  description = "SQS queue holding events that could not be delivered (null without events)."
  value       = one(aws_sqs_queue.events_dlq[*].id)
}

output "task_policy_json" {
  description = "The task role's S3 policy document (what the running function may do)."
  value       = aws_iam_role_policy.task.policy
}

output "publisher_policy_json" {
  description = "IAM policy document for whoever runs `modelfn publish` for this model (attach it to that user or CI role)."
  value       = jsonencode({ Version = "2012-10-17", Statement = local.publisher_statements })
}

output "batch_task_definition" {
  description = "ARN of the batch task definition (null when batch_jobs is off)."
  value       = local.batch_on ? aws_ecs_task_definition.batch[0].arn : null
}

output "batch_identity" {
  description = "ARN of the role batch tasks run as (null when batch_jobs is off)."
  value       = local.batch_on ? aws_iam_role.batch[0].arn : null
}
