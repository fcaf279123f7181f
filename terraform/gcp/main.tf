locals {
  bucket          = regex("^gs://([^/]+)/", var.model_uri)[0]
  bucket_location = coalesce(var.bucket_location, var.region)
  apis            = var.enable_apis ? toset(["run.googleapis.com", "eventarc.googleapis.com", "pubsub.googleapis.com"]) : toset([])
}

resource "google_project_service" "apis" {
  for_each           = local.apis
  project            = var.project_id
  service            = each.value
  disable_on_destroy = false
}

resource "google_storage_bucket" "models" {
  #checkov:skip=CKV_GCP_62:access logging goes to Cloud Audit Logs (Data Access logs), not a second log bucket
  count                       = var.create_bucket ? 1 : 0
  project                     = var.project_id
  name                        = local.bucket
  location                    = local.bucket_location
  uniform_bucket_level_access = true # required by the module's prefix-scoped IAM conditions
  public_access_prevention    = "enforced"
  labels                      = var.labels

  versioning {
    enabled = true
  }
}

module "service" {
  source = "../modules/cloud-run"

  project_id              = var.project_id
  region                  = var.region
  events_location         = local.bucket_location
  name                    = var.name
  image                   = var.image
  model_uri               = var.model_uri
  env                     = var.env
  secrets                 = var.secrets
  cpu                     = var.cpu
  memory_mib              = var.memory_mib
  min_instances           = var.min_instances
  max_instances           = var.max_instances
  concurrency             = var.concurrency
  request_timeout_seconds = var.request_timeout_seconds
  gpu                     = var.gpu
  gpu_zonal_redundancy    = var.gpu_zonal_redundancy
  events                  = var.events
  labels                  = var.labels
  invoker_members         = var.invoker_members
  public                  = var.public

  depends_on = [google_project_service.apis, google_storage_bucket.models]
}
