variable "deploy_service" {
  type        = bool
  description = "false: create only the storage (first step of a first deployment: apply, publish the model, then apply with true)."
  default     = true
}

variable "subscription_id" {
  type        = string
  description = "Azure subscription id."
}

variable "location" {
  type        = string
  description = "Azure region."
}

variable "resource_group_name" {
  type        = string
  description = "Resource group for everything this stack creates."
}

variable "create_resource_group" {
  type        = bool
  description = "Create the resource group."
  default     = true
}

variable "storage_account_name" {
  type        = string
  description = "Storage account holding the model container (and the event inputs/outputs)."
}

variable "storage_account_resource_group" {
  type        = string
  description = "Resource group of an existing storage account (defaults to resource_group_name)."
  default     = null
}

variable "storage_account_location" {
  type        = string
  description = "Region of an existing storage account (its Event Grid system topic must be there). null: location."
  default     = null
}

variable "existing_system_topic" {
  type = object({
    name                = string
    resource_group_name = string
  })
  description = "The storage account's existing Event Grid system topic (an account has at most one), with a system-assigned identity. null: create one."
  default     = null
}

variable "create_storage_account" {
  type        = bool
  description = "Create the storage account and the container named in model_uri."
  default     = false
}

variable "acr_id" {
  type        = string
  description = "Resource id of the Azure Container Registry with the image (AcrPull for the app's identity); null for a public image."
  default     = null
}

variable "events_secret" {
  type        = string
  description = "Shared events secret (required with events); pass it as TF_VAR_events_secret, never in a file."
  default     = null
  sensitive   = true
}

variable "name" {
  type        = string
  description = "Service name; also prefixes every resource created."
}

variable "image" {
  type        = string
  description = "The modelfn image, pushed to this cloud's registry (see docs/deploy.md)."
}

variable "model_uri" {
  type        = string
  description = "Artifact URI, e.g. az://models/team/iris@prod."
}

variable "env" {
  type        = map(string)
  description = "Extra environment variables (function settings such as LOG_LEVEL)."
  default     = {}
}

variable "secrets" {
  type        = map(string)
  description = "Environment variables read from Key Vault: NAME => versionless secret id."
  default     = {}
}

variable "cpu" {
  type        = number
  description = "vCPUs per instance."
  default     = 1
}

variable "memory_mib" {
  type        = number
  description = "Memory per instance in MiB."
  default     = 2048
}

variable "min_instances" {
  type        = number
  description = "Minimum instances; 0 scales to zero."
  default     = 0
}

variable "max_instances" {
  type        = number
  description = "Maximum instances."
  default     = 3
}

variable "concurrency" {
  type        = number
  description = "Concurrent requests per instance."
  default     = 8
}

variable "request_timeout_seconds" {
  type        = number
  description = "Request timeout in seconds."
  default     = 240
}

variable "gpu" {
  type        = string
  description = "GPU: null, \"nvidia-t4\" or \"nvidia-a100\" (serverless GPU workload profiles)."
  default     = null
}

variable "events" {
  type = object({
    input_prefix  = string
    output_prefix = string
  })
  description = "Storage-triggered inference on uploads under input_prefix (results under output_prefix); null disables it."
  default     = null
}

variable "labels" {
  type        = map(string)
  description = "Tags for every resource."
  default     = {}
}
