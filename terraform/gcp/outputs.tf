output "url" {
  description = "HTTPS endpoint of the service."
  value       = one(module.service[*].url)
}

output "service_identity" {
  description = "Service account the container runs as."
  value       = one(module.service[*].service_identity)
}

output "bucket" {
  description = "Bucket holding the model and the event inputs/outputs."
  value       = one(module.service[*].bucket)
}
