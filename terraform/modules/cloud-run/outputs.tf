output "url" {
  description = "HTTPS endpoint of the service."
  value       = google_cloud_run_v2_service.this.uri
}

output "service_identity" {
  description = "Email of the service account the container runs as."
  value       = google_service_account.service.email
}

output "bucket" {
  description = "Bucket holding the model (and the event inputs/outputs)."
  value       = local.bucket
}

output "model_prefix" {
  description = "Object prefix the service account may read."
  value       = local.model_prefix
}

output "service_name" {
  description = "Cloud Run service name."
  value       = google_cloud_run_v2_service.this.name
}

output "env" {
  description = "Plain environment variables set on the container (secrets excluded)."
  value       = local.env
}
