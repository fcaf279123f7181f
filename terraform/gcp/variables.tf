variable "deploy_service" {
  type        = bool
  description = "false: create only the storage (first step of a first deployment: apply, publish the model, then apply with true)."
  default     = true
}

variable "project_id" {
  type        = string
  description = "Google Cloud project id."
}

variable "region" {
  type        = string
  description = "Region of the Cloud Run service (and of the bucket when create_bucket is true)."
}

variable "create_bucket" {
  type        = bool
  description = "Create the bucket named in model_uri (uniform access, versioned, no public access)."
  default     = false
}

variable "bucket_location" {
  type        = string
  description = "Location of the bucket (region or multi-region); the Eventarc trigger lives there. Defaults to region."
  default     = null
}

variable "enable_apis" {
  type        = bool
  description = "Enable the APIs the stack needs (IAM, Cloud Run, Cloud Storage; Eventarc and Pub/Sub with events; Secret Manager with secrets)."
  default     = true
}

variable "create_eventarc_service_agent" {
  type        = bool
  description = "With events, create the Eventarc service agent with `gcloud beta services identity create` (needs gcloud where terraform runs; harmless when it exists)."
  default     = true
}

variable "invoker_members" {
  type        = list(string)
  description = "IAM members allowed to invoke the service (roles/run.invoker)."
  default     = []
}

variable "public" {
  type        = bool
  description = "Allow unauthenticated invocations. Private by default."
  default     = false
}

variable "gpu_zonal_redundancy" {
  type        = bool
  description = "With a GPU: keep zonal redundancy (more quota); false is the cheaper default."
  default     = false
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
  description = "Artifact URI, e.g. gs://my-models/models/iris@prod."
}

variable "env" {
  type        = map(string)
  description = "Extra environment variables (function settings such as LOG_LEVEL)."
  default     = {}
}

variable "secrets" {
  type        = map(string)
  description = "Environment variables read from Secret Manager: NAME => secret id."
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
  default     = 300
}

variable "gpu" {
  type        = string
  description = "GPU type: null or \"nvidia-l4\" (needs cpu >= 4, memory_mib >= 16384)."
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
  description = "Labels for every resource that takes them."
  default     = {}
}
