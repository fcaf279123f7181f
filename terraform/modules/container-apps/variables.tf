# Shared input contract (identical in cloud-run, ecs-fargate and container-apps), then GCP-only inputs.

variable "name" {
  type        = string
  description = "Service name; also prefixes every resource the module creates."

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{0,28}[a-z0-9]$", var.name))
    error_message = "name must be 2-30 characters of lowercase letters, digits and '-', starting with a letter."
  }
}

variable "image" {
  type        = string
  description = "Container image (the one modelfn image), e.g. myregistry.azurecr.io/modelfn:1.0.0."

  validation {
    condition     = length(trimspace(var.image)) > 0
    error_message = "image must not be empty."
  }
}

variable "model_uri" {
  type        = string
  description = "Artifact URI az://container/prefix/name@version|alias (account: storage_account_id); the identity can read only this model's prefix."

  validation {
    condition     = can(regex(local.model_uri_re, var.model_uri))
    error_message = "model_uri must look like az://container/prefix/name@alias (lowercase model name)."
  }
}

variable "env" {
  type        = map(string)
  description = "Extra environment variables (function settings, e.g. LOG_LEVEL). Names the module manages are refused."
  default     = {}

  validation {
    condition     = alltrue([for k in keys(var.env) : can(regex("^[A-Z][A-Z0-9_]*$", k))])
    error_message = "env names must be upper-case identifiers (LOG_LEVEL, LOAD_MODE, ...)."
  }

  validation {
    condition     = length(setintersection(keys(var.env), local.managed_env)) == 0
    error_message = "env must not set MODEL_URI, PORT, AZURE_STORAGE_ACCOUNT_URL, AZURE_CLIENT_ID, EVENTS_INPUT_URI, EVENTS_OUTPUT_URI or EVENTS_SECRET: the module sets them from its inputs."
  }
}

variable "secrets" {
  type        = map(string)
  description = "Environment variables read from Key Vault: NAME => versionless secret id (the identity needs Key Vault Secrets User on it)."
  default     = {}

  validation {
    condition     = alltrue([for k in keys(var.secrets) : can(regex("^[A-Z][A-Z0-9_]*$", k))])
    error_message = "secrets names must be upper-case identifiers."
  }
}

variable "cpu" {
  type        = number
  description = "vCPUs per replica: 0.25..4 in steps of 0.25 on the Consumption profile (more on a GPU profile)."
  default     = 1

  validation {
    condition     = var.cpu >= 0.25 && var.cpu <= 24 && floor(var.cpu * 4) == var.cpu * 4
    error_message = "cpu must be a multiple of 0.25 between 0.25 and 24."
  }
}

variable "memory_mib" {
  type        = number
  description = "Memory per replica in MiB; on the Consumption profile exactly 2 GiB per vCPU (cpu 1 => 2048)."
  default     = 2048

  validation {
    condition     = var.memory_mib % 256 == 0 && var.memory_mib >= 512 && var.memory_mib <= 225280
    error_message = "memory_mib must be a multiple of 256 between 512 and 225280."
  }

  validation {
    condition     = var.gpu != null || (var.cpu <= 4 && var.memory_mib == var.cpu * 2048)
    error_message = "On the Consumption profile cpu must be <= 4 and memory_mib exactly cpu * 2048 (e.g. cpu 1, memory_mib 2048)."
  }
}

variable "min_instances" {
  type        = number
  description = "Minimum instances; 0 scales to zero (the default)."
  default     = 0

  validation {
    condition     = var.min_instances >= 0 && floor(var.min_instances) == var.min_instances
    error_message = "min_instances must be a whole number >= 0."
  }
}

variable "max_instances" {
  type        = number
  description = "Maximum instances."
  default     = 3

  validation {
    condition     = var.max_instances >= 1 && var.max_instances >= var.min_instances
    error_message = "max_instances must be >= 1 and >= min_instances."
  }
}

variable "concurrency" {
  type        = number
  description = "Concurrent requests per instance (Gunicorn THREADS with one worker)."
  default     = 8

  validation {
    condition     = var.concurrency >= 1 && var.concurrency <= 1000 && floor(var.concurrency) == var.concurrency
    error_message = "concurrency must be a whole number between 1 and 1000."
  }
}

variable "request_timeout_seconds" {
  type        = number
  description = "Request timeout in seconds (also Gunicorn's TIMEOUT)."
  default     = 240

  validation {
    condition     = var.request_timeout_seconds >= 1 && var.request_timeout_seconds <= 240
    error_message = "request_timeout_seconds must be between 1 and 240: Container Apps ingress ends requests after 240 s."
  }
}

variable "gpu" {
  type        = string
  description = "GPU, or null for CPU only: nvidia-t4 (Consumption-GPU-NC8as-T4) or nvidia-a100 (Consumption-GPU-NC24-A100) serverless GPU profiles."
  default     = null

  validation {
    condition     = var.gpu == null || contains(["nvidia-t4", "nvidia-a100"], coalesce(var.gpu, "none"))
    error_message = "gpu must be null, \"nvidia-t4\" or \"nvidia-a100\" on Azure Container Apps."
  }
}

variable "events" {
  type = object({
    input_prefix  = string
    output_prefix = string
  })
  description = "Storage-triggered inference: uploads under input_prefix of the model bucket are POSTed to /events; results go under output_prefix. null disables events."
  default     = null

  validation {
    condition = var.events == null ? true : (
      can(regex("^[^/].*/$", var.events.input_prefix)) && can(regex("^[^/].*/$", var.events.output_prefix))
    )
    error_message = "events.input_prefix and events.output_prefix must be relative prefixes ending in '/', e.g. inputs/."
  }

  validation {
    condition = var.events == null ? true : (
      !startswith(var.events.output_prefix, var.events.input_prefix) && !startswith(var.events.input_prefix, var.events.output_prefix)
    )
    error_message = "events.input_prefix and events.output_prefix must not overlap, or outputs would trigger new events."
  }
}

variable "labels" {
  type        = map(string)
  description = "Tags for every resource that takes them."
  default     = {}
}

# Azure-only inputs.

variable "resource_group_name" {
  type        = string
  description = "Resource group for the environment, the app and the event wiring."
}

variable "location" {
  type        = string
  description = "Azure region; the Event Grid system topic uses the storage account's region (storage_account_location)."
}

variable "storage_account_id" {
  type        = string
  description = "Resource id of the storage account that holds the model container (and the event inputs/outputs)."

  validation {
    condition     = can(regex("/providers/Microsoft.Storage/storageAccounts/[a-z0-9]{3,24}$", var.storage_account_id))
    error_message = "storage_account_id must be a storage account resource id (.../providers/Microsoft.Storage/storageAccounts/<name>)."
  }
}

variable "storage_account_location" {
  type        = string
  description = "Region of the storage account (for its Event Grid system topic). Defaults to location."
  default     = null
}

variable "acr_id" {
  type        = string
  description = "Resource id of the Azure Container Registry holding the image; the app's identity gets AcrPull and pulls with it. null: a public image."
  default     = null
}

variable "events_secret" {
  type        = string
  description = "Shared secret Event Grid sends as X-Modelfn-Event-Secret (required with events); stored as a Container Apps secret (EVENTS_SECRET)."
  default     = null
  sensitive   = true

  validation {
    condition     = var.events == null || try(length(var.events_secret) >= 16, false)
    error_message = "events_secret (16+ characters) is required when events are enabled: Event Grid sends it as X-Modelfn-Event-Secret."
  }
}

variable "log_retention_days" {
  type        = number
  description = "Log Analytics retention in days."
  default     = 30

  validation {
    condition     = var.log_retention_days >= 30 && var.log_retention_days <= 730
    error_message = "log_retention_days must be between 30 and 730."
  }
}

variable "existing_system_topic" {
  type = object({
    name                = string
    resource_group_name = string
  })
  description = "The storage account's Event Grid system topic when it has one already (an account has at most one); it needs a system-assigned identity. null: the module creates it."
  default     = null
}

variable "iam_propagation_seconds" {
  type        = number
  description = "Seconds to wait after the dead-letter role assignment before creating the event subscription (RBAC propagation)."
  default     = 60

  validation {
    condition     = var.iam_propagation_seconds >= 0 && var.iam_propagation_seconds <= 600
    error_message = "iam_propagation_seconds must be between 0 and 600."
  }
}

variable "endpoint_wait_seconds" {
  type        = number
  description = "How long to poll https://<fqdn>/readyz (needs curl) before creating the event subscription, whose validation handshake needs a ready replica; 0 skips the wait."
  default     = 600

  validation {
    condition     = var.endpoint_wait_seconds >= 0 && var.endpoint_wait_seconds <= 3600
    error_message = "endpoint_wait_seconds must be between 0 and 3600."
  }
}

variable "batch_jobs" {
  type = object({
    inline_max_mib       = optional(number, 256)
    task_target_mib      = optional(number, 256)
    max_tasks            = optional(number, 100)
    cpu                  = optional(number, 2)
    task_timeout_seconds = optional(number, 3600)
    max_retries          = optional(number, 3)
    output_format        = optional(string, "jsonl")
  })
  description = "Sharded batch jobs for event inputs over inline_max_mib (a Container Apps job; needs events). null: off."
  default     = null

  validation {
    condition     = var.batch_jobs == null || var.events != null
    error_message = "batch_jobs needs events (the job reads the input prefix and writes the output prefix)."
  }
  validation {
    condition     = var.batch_jobs == null || try(contains(["jsonl", "parquet"], var.batch_jobs.output_format), false)
    error_message = "batch_jobs.output_format must be jsonl or parquet."
  }
  validation {
    condition     = var.batch_jobs == null || try(contains([0.5, 1, 1.5, 2, 2.5, 3, 3.5, 4], var.batch_jobs.cpu), false)
    error_message = "batch_jobs.cpu must be 0.5 to 4 in steps of 0.5 (memory is 2 GiB per vCPU on Consumption)."
  }
}
