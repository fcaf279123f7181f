output "url" {
  description = "HTTPS endpoint of the container app."
  value       = local.fqdn == null ? null : "https://${local.fqdn}"
}

output "service_identity" {
  description = "Client id of the user-assigned identity the app runs as."
  value       = azurerm_user_assigned_identity.this.client_id
}

output "bucket" {
  description = "Blob container holding the model (and the event inputs/outputs)."
  value       = local.container
}

output "model_prefix" {
  description = "Blob prefix the identity may read."
  value       = local.model_prefix
}

output "storage_account_url" {
  description = "Blob endpoint of the storage account (AZURE_STORAGE_ACCOUNT_URL)."
  value       = local.account_url
}

output "app_name" {
  description = "Container app name."
  value       = azurerm_container_app.this.name
}

output "env" {
  description = "Plain environment variables set on the container (secrets excluded)."
  value       = local.env
}

output "batch_job" {
  description = "Name of the batch Container Apps job (null when batch_jobs is off)."
  value       = local.batch_on ? azurerm_container_app_job.batch[0].name : null
}

output "batch_identity" {
  description = "Principal id of the identity batch executions run as (null when batch_jobs is off)."
  value       = local.batch_on ? azurerm_user_assigned_identity.batch[0].principal_id : null
}
