# Shared input contract (identical in cloud-run, ecs-fargate and container-apps), then GCP-only inputs.

variable "name" {
  type        = string
  description = "Service name; also prefixes every resource the module creates."

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{0,28}[a-z0-9]$", var.name))
    error_message = "name must be 2-30 characters of lowercase letters, digits and '-', starting with a letter."
  }

  validation {
    # Service account ids are 6-30 characters: "<name>-run" (and "<name>-events", see events).
    condition     = length(var.name) <= 26
    error_message = "name must be at most 26 characters on Cloud Run: the service account id \"<name>-run\" is limited to 30."
  }
}

variable "image" {
  type        = string
  description = "Container image (the one modelfn image), e.g. europe-docker.pkg.dev/p/modelfn/modelfn:1.0.0."

  validation {
    condition     = length(trimspace(var.image)) > 0
    error_message = "image must not be empty."
  }
}

variable "model_uri" {
  type        = string
  description = "Artifact URI gs://bucket/prefix/name@version|alias; the service account can read only this model's prefix."

  validation {
    condition     = can(regex(local.model_uri_re, var.model_uri))
    error_message = "model_uri must look like gs://bucket/prefix/name@alias (lowercase model name)."
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
    error_message = "env must not set MODEL_URI, PORT, EVENTS_INPUT_URI, EVENTS_OUTPUT_URI, EVENTS_SECRET, EVENTS_AUTH, THREADS, KEEPALIVE_SECONDS or GOOGLE_CLOUD_PROJECT: the module sets them from its inputs."
  }
}

variable "secrets" {
  type        = map(string)
  description = "Environment variables read from Secret Manager: NAME => secret id (same project) or projects/P/secrets/S; version 'latest'."
  default     = {}

  validation {
    condition     = alltrue([for k in keys(var.secrets) : can(regex("^[A-Z][A-Z0-9_]*$", k))])
    error_message = "secrets names must be upper-case identifiers."
  }
}

variable "cpu" {
  type        = number
  description = "vCPUs per instance (1, 2, 4, 6 or 8; at least 4 with a GPU)."
  default     = 1

  validation {
    condition     = contains([1, 2, 4, 6, 8], var.cpu)
    error_message = "cpu must be one of 1, 2, 4, 6, 8 on Cloud Run."
  }
}

variable "memory_mib" {
  type        = number
  description = "Memory per instance in MiB (512..32768; at least 16384 with a GPU)."
  default     = 2048

  validation {
    condition     = var.memory_mib >= 512 && var.memory_mib <= 32768 && floor(var.memory_mib) == var.memory_mib
    error_message = "memory_mib must be a whole number between 512 and 32768."
  }

  validation {
    # Cloud Run's CPU/memory pairs: 1 vCPU up to 4 GiB, 2 up to 8, 4: 2-16, 6: 4-24, 8: 4-32 GiB.
    condition = !contains([1, 2, 4, 6, 8], var.cpu) || (
      var.memory_mib >= lookup({ 1 = 512, 2 = 512, 4 = 2048, 6 = 4096, 8 = 4096 }, tostring(var.cpu), 512) &&
      var.memory_mib <= lookup({ 1 = 4096, 2 = 8192, 4 = 16384, 6 = 24576, 8 = 32768 }, tostring(var.cpu), 32768)
    )
    error_message = "memory_mib does not fit cpu on Cloud Run: 1 vCPU 512-4096, 2 vCPU 512-8192, 4 vCPU 2048-16384, 6 vCPU 4096-24576, 8 vCPU 4096-32768 MiB."
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
  default     = 300

  validation {
    condition     = var.request_timeout_seconds >= 1 && var.request_timeout_seconds <= 3600
    error_message = "request_timeout_seconds must be between 1 and 3600 on Cloud Run."
  }
}

variable "gpu" {
  type        = string
  description = "GPU type, or null for CPU only. Cloud Run offers nvidia-l4 (needs cpu >= 4 and memory_mib >= 16384)."
  default     = null

  validation {
    condition     = var.gpu == null || var.gpu == "nvidia-l4"
    error_message = "gpu must be null or \"nvidia-l4\" on Cloud Run."
  }

  validation {
    condition     = var.gpu == null || (var.cpu >= 4 && var.memory_mib >= 16384)
    error_message = "Cloud Run GPUs (nvidia-l4) need cpu >= 4 and memory_mib >= 16384."
  }

  validation {
    # Only the gpu image variant has CUDA builds of the runtimes (docs/deploy.md tags it "-gpu").
    condition     = var.gpu == null || strcontains(lower(var.image), "gpu")
    error_message = "with a GPU, image must be the gpu variant of the modelfn image (built with VARIANT=gpu, tagged e.g. modelfn:0.1.0-gpu)."
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

  validation {
    condition     = var.events == null || length(var.name) <= 23
    error_message = "with events, name must be at most 23 characters on Cloud Run: the trigger's service account id \"<name>-events\" is limited to 30."
  }
}

variable "labels" {
  type        = map(string)
  description = "Labels for every resource that takes them."
  default     = {}
}

# GCP-only inputs.

variable "project_id" {
  type        = string
  description = "Google Cloud project id."
}

variable "region" {
  type        = string
  description = "Cloud Run region; the Eventarc trigger must be in the bucket's location (a region or multi-region such as us)."
}

variable "events_location" {
  type        = string
  description = "Location of the Eventarc trigger: the bucket's location (region, dual- or multi-region). Defaults to region."
  default     = null
}

variable "invoker_members" {
  type        = list(string)
  description = "IAM members granted roles/run.invoker (e.g. group:ml@example.com, serviceAccount:...)."
  default     = []
}

variable "public" {
  type        = bool
  description = "Allow unauthenticated invocations (allUsers). Private by default; refused with events (Eventarc sends no shared secret, so anyone could post events)."
  default     = false

  validation {
    condition     = !(var.public && var.events != null)
    error_message = "public = true with events would let anyone POST /events (Eventarc authenticates with IAM, not a shared secret): keep the service private and grant invoker_members instead."
  }
}

variable "iam_propagation_seconds" {
  type        = number
  description = "Seconds to wait after the Eventarc IAM grants before creating the trigger (IAM propagation); 0 skips the wait."
  default     = 90

  validation {
    condition     = var.iam_propagation_seconds >= 0 && var.iam_propagation_seconds <= 600
    error_message = "iam_propagation_seconds must be between 0 and 600."
  }
}

variable "gpu_zonal_redundancy" {
  type        = bool
  description = "With a GPU: reserve capacity in other zones (costs more quota); false uses the cheaper non-redundant mode."
  default     = false
}

variable "deletion_protection" {
  type        = bool
  description = "Refuse `terraform destroy` of the Cloud Run service."
  default     = false
}

variable "batch_jobs" {
  type = object({
    inline_max_mib       = optional(number, 256)
    task_target_mib      = optional(number, 256)
    max_tasks            = optional(number, 100)
    parallelism          = optional(number, 0)
    cpu                  = optional(number, 2)
    memory_mib           = optional(number, 2048)
    task_timeout_seconds = optional(number, 3600)
    max_retries          = optional(number, 3)
    output_format        = optional(string, "jsonl")
  })
  description = "Sharded batch jobs for event inputs over inline_max_mib (a Cloud Run job; needs events). null: off."
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
    condition     = var.batch_jobs == null || try(var.batch_jobs.max_tasks >= 1 && var.batch_jobs.max_tasks <= 10000, false)
    error_message = "batch_jobs.max_tasks must be between 1 and 10000 (Cloud Run's task limit)."
  }
}
