output "url" {
  description = "HTTPS endpoint of the service."
  value       = module.service.url
}

output "service_identity" {
  description = "Task role ARN the container runs as."
  value       = module.service.service_identity
}

output "bucket" {
  description = "Bucket holding the model and the event inputs/outputs."
  value       = module.service.bucket
}

output "load_balancer_dns_name" {
  description = "Point domain_name at this (CNAME or Route 53 alias)."
  value       = module.service.load_balancer_dns_name
}

output "events_dead_letter_queue_url" {
  description = "SQS dead-letter queue for undeliverable events."
  value       = module.service.events_dead_letter_queue_url
}
