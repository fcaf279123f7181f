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

output "batch_job" {
  description = "Full name of the batch Cloud Run job (null when batch_jobs is off)."
  value       = local.batch_on ? "projects/${var.project_id}/locations/${var.region}/jobs/${google_cloud_run_v2_job.batch[0].name}" : null
}

output "batch_identity" {
  description = "Email of the service account batch tasks run as (null when batch_jobs is off)."
  value       = local.batch_on ? google_service_account.batch[0].email : null
}
