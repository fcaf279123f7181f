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
  description = "Container image (the one modelfn image), e.g. 123456789012.dkr.ecr.eu-west-1.amazonaws.com/modelfn:1.0.0."

  validation {
    condition     = length(trimspace(var.image)) > 0
    error_message = "image must not be empty."
  }
}

variable "model_uri" {
  type        = string
  description = "Artifact URI s3://bucket/prefix/name@version|alias; the task role can read only this model's prefix."

  validation {
    condition     = can(regex(local.model_uri_re, var.model_uri))
    error_message = "model_uri must look like s3://bucket/prefix/name@alias (lowercase model name)."
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
    error_message = "env must not set MODEL_URI, PORT, AWS_REGION, EVENTS_INPUT_URI, EVENTS_OUTPUT_URI, EVENTS_SECRET, THREADS or KEEPALIVE_SECONDS: the module sets them from its inputs."
  }
}

variable "secrets" {
  type        = map(string)
  description = "Environment variables read from AWS Secrets Manager: NAME => secret ARN (optionally ARN:json-key::)."
  default     = {}

  validation {
    condition     = alltrue([for k in keys(var.secrets) : can(regex("^[A-Z][A-Z0-9_]*$", k))])
    error_message = "secrets names must be upper-case identifiers."
  }
}

variable "cpu" {
  type        = number
  description = "vCPUs per task (0.25, 0.5, 1, 2, 4, 8 or 16)."
  default     = 1

  validation {
    condition     = contains([0.25, 0.5, 1, 2, 4, 8, 16], var.cpu)
    error_message = "cpu must be one of 0.25, 0.5, 1, 2, 4, 8, 16 on Fargate."
  }
}

variable "memory_mib" {
  type        = number
  description = "Memory per task in MiB: a Fargate combination, 2x..8x the vCPUs in GiB (0.25 vCPU: 512..2048)."
  default     = 2048

  validation {
    condition = (
      var.memory_mib % 512 == 0 &&
      var.memory_mib >= max(512, var.cpu * 2048) && var.memory_mib <= min(var.cpu * 8192, 122880)
    )
    error_message = "memory_mib is not a Fargate size for this cpu: use a multiple of 512 MiB between 2 and 8 GiB per vCPU (0.25 vCPU: 512-2048)."
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
    condition     = var.request_timeout_seconds >= 1 && var.request_timeout_seconds <= 4000
    error_message = "request_timeout_seconds must be between 1 and 4000 (the ALB idle timeout limit)."
  }
}

variable "gpu" {
  type        = string
  description = "Must be null: ECS Fargate has no GPUs (kept for the shared contract)."
  default     = null

  validation {
    condition     = var.gpu == null
    error_message = "ECS Fargate has no GPUs: leave gpu unset, or deploy GPU models on Cloud Run (nvidia-l4) or Azure Container Apps (GPU workload profile)."
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

# AWS-only inputs.

variable "region" {
  type        = string
  description = "AWS region of the service and the bucket (for awslogs and the SDK)."
}

variable "vpc_id" {
  type        = string
  description = "VPC of the load balancer and the tasks."
}

variable "alb_subnet_ids" {
  type        = list(string)
  description = "Public subnets (two or more AZs) for the internet-facing load balancer."

  validation {
    condition     = length(var.alb_subnet_ids) >= 2
    error_message = "alb_subnet_ids needs subnets in at least two availability zones."
  }
}

variable "task_subnet_ids" {
  type        = list(string)
  description = "Subnets for the tasks (private with a NAT gateway or VPC endpoints for S3, ECR and logs; or public with assign_public_ip)."

  validation {
    condition     = length(var.task_subnet_ids) >= 1
    error_message = "task_subnet_ids needs at least one subnet."
  }
}

variable "assign_public_ip" {
  type        = bool
  description = "Give tasks public IPs (only for public task subnets without NAT)."
  default     = false
}

variable "certificate_arn" {
  type        = string
  description = "ACM certificate ARN for the HTTPS listener; it must cover domain_name."

  validation {
    condition     = can(regex("^arn:aws[a-z-]*:acm:", var.certificate_arn))
    error_message = "certificate_arn must be an ACM certificate ARN (arn:aws:acm:...)."
  }
}

variable "domain_name" {
  type        = string
  description = "DNS name that points at the load balancer and matches the certificate (e.g. iris.ml.example.com); the endpoint URL and the event target use it."
}

variable "allowed_cidrs" {
  type        = list(string)
  description = "Client CIDRs admitted by the load balancer (EventBridge API destinations call from AWS public addresses)."
  default     = ["0.0.0.0/0"]
}

variable "log_retention_days" {
  type        = number
  description = "CloudWatch Logs retention for the container logs."
  default     = 30

  validation {
    condition     = contains([1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653], var.log_retention_days)
    error_message = "log_retention_days must be a CloudWatch Logs retention value (1, 3, 5, 7, 14, 30, 60, 90, ... 3653)."
  }
}

variable "log_kms_key_arn" {
  type        = string
  description = "KMS key for the log group (null: CloudWatch Logs' own encryption)."
  default     = null
}

variable "idle_minutes_to_zero" {
  type        = number
  description = "Scale to zero tasks after this many minutes without requests."
  default     = 15

  validation {
    condition     = var.idle_minutes_to_zero >= 1 && var.idle_minutes_to_zero <= 1440
    error_message = "idle_minutes_to_zero must be between 1 and 1440."
  }
}

variable "target_requests_per_task_per_minute" {
  type        = number
  description = "Target tracking between 1 and max_instances: ALB requests per task per minute."
  default     = 600

  validation {
    condition     = var.target_requests_per_task_per_minute > 0
    error_message = "target_requests_per_task_per_minute must be positive."
  }
}

variable "events_secret_arn" {
  type        = string
  description = "Secrets Manager secret holding the shared events secret (required with events): sent by the EventBridge connection as X-Modelfn-Event-Secret and given to the task as EVENTS_SECRET."
  default     = null

  validation {
    condition     = var.events == null || var.events_secret_arn != null
    error_message = "events_secret_arn is required when events are enabled (EventBridge sends the shared secret header)."
  }
}

variable "manage_bucket_notification" {
  type        = bool
  description = "Turn on the bucket's EventBridge notifications (aws_s3_bucket_notification replaces the bucket's whole notification config)."
  default     = true
}

variable "deletion_protection" {
  type        = bool
  description = "Enable deletion protection on the load balancer."
  default     = false
}

variable "batch_jobs" {
  type = object({
    inline_max_mib        = optional(number, 256)
    task_target_mib       = optional(number, 256)
    max_tasks             = optional(number, 100)
    cpu                   = optional(number, 2)
    memory_mib            = optional(number, 4096)
    ephemeral_storage_gib = optional(number, 21)
    output_format         = optional(string, "jsonl")
  })
  description = "Sharded batch jobs for event inputs over inline_max_mib (ECS RunTask on Fargate; needs events). null: off."
  default     = null

  validation {
    condition     = var.batch_jobs == null || var.events != null
    error_message = "batch_jobs needs events (the tasks read the input prefix and write the output prefix)."
  }
  validation {
    condition     = var.batch_jobs == null || try(contains(["jsonl", "parquet"], var.batch_jobs.output_format), false)
    error_message = "batch_jobs.output_format must be jsonl or parquet."
  }
  validation {
    condition     = var.batch_jobs == null || try(var.batch_jobs.ephemeral_storage_gib >= 21 && var.batch_jobs.ephemeral_storage_gib <= 200, false)
    error_message = "batch_jobs.ephemeral_storage_gib must be between 21 and 200 (Fargate's range)."
  }
}
