output "url" {
  description = "HTTPS endpoint of the service."
  value       = one(module.service[*].url)
}

output "service_identity" {
  description = "Task role ARN the container runs as."
  value       = one(module.service[*].service_identity)
}

output "bucket" {
  description = "Bucket holding the model and the event inputs/outputs."
  value       = one(module.service[*].bucket)
}

output "load_balancer_dns_name" {
  description = "Point domain_name at this (CNAME or Route 53 alias)."
  value       = one(module.service[*].load_balancer_dns_name)
}

output "events_dead_letter_queue_url" {
  description = "SQS dead-letter queue for undeliverable events."
  value       = one(module.service[*].events_dead_letter_queue_url)
}

output "publisher_policy_json" {
  description = "IAM policy for the user or CI role that runs `modelfn publish` for this model."
  value       = one(module.service[*].publisher_policy_json)
}
