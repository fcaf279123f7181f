output "url" {
  description = "HTTPS endpoint of the container app."
  value       = one(module.service[*].url)
}

output "service_identity" {
  description = "Client id of the app's user-assigned identity."
  value       = one(module.service[*].service_identity)
}

output "bucket" {
  description = "Blob container holding the model and the event inputs/outputs."
  value       = one(module.service[*].bucket)
}

output "storage_account_url" {
  description = "Blob endpoint of the storage account."
  value       = one(module.service[*].storage_account_url)
}
