variable "deploy_service" {
  type        = bool
  description = "false: create only the storage (first step of a first deployment: apply, publish the model, then apply with true)."
  default     = true
}

variable "region" {
  type        = string
  description = "AWS region of the service and the bucket."
}

variable "create_bucket" {
  type        = bool
  description = "Create the bucket named in model_uri (versioned, encrypted, no public access)."
  default     = false
}

variable "manage_bucket_notification" {
  type        = bool
  description = "Turn on the bucket's EventBridge notifications. This REPLACES the bucket's whole notification configuration (Lambda/SQS/SNS ones are deleted); null: only when create_bucket. For an existing bucket enable EventBridge on it yourself (see README)."
  default     = null
}

variable "vpc_id" {
  type        = string
  description = "VPC for the load balancer and the tasks."
}

variable "alb_subnet_ids" {
  type        = list(string)
  description = "Public subnets (two or more AZs) for the load balancer."
}

variable "task_subnet_ids" {
  type        = list(string)
  description = "Subnets for the tasks (private with NAT or VPC endpoints, or public with assign_public_ip)."
}

variable "assign_public_ip" {
  type        = bool
  description = "Give tasks public IPs (public task subnets without NAT)."
  default     = false
}

variable "certificate_arn" {
  type        = string
  description = "ACM certificate for the HTTPS listener; it must cover domain_name."
}

variable "domain_name" {
  type        = string
  description = "DNS name pointing at the load balancer (CNAME/alias to the load_balancer_dns_name output)."
}

variable "allowed_cidrs" {
  type        = list(string)
  description = "Client CIDRs admitted by the load balancer."
  default     = ["0.0.0.0/0"]
}

variable "idle_minutes_to_zero" {
  type        = number
  description = "Scale to zero after this many minutes without requests."
  default     = 15
}

variable "log_retention_days" {
  type        = number
  description = "CloudWatch Logs retention for the container logs."
  default     = 30
}

variable "events_secret_arn" {
  type        = string
  description = "Secrets Manager secret with the shared events secret (required with events)."
  default     = null
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
  description = "Artifact URI, e.g. s3://my-models/models/iris@prod."
}

variable "env" {
  type        = map(string)
  description = "Extra environment variables (function settings such as LOG_LEVEL)."
  default     = {}
}

variable "secrets" {
  type        = map(string)
  description = "Environment variables read from Secrets Manager: NAME => secret ARN."
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
  description = "Must stay null: ECS Fargate has no GPUs."
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
  description = "Tags for every resource (also the provider's default_tags)."
  default     = {}
}
