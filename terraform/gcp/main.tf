locals {
  bucket          = regex("^gs://([^/]+)/", var.model_uri)[0]
  bucket_location = coalesce(var.bucket_location, var.region)
  # Everything a fresh project needs: service accounts (iam), Cloud Run, the bucket (storage); with events
  # Eventarc and Pub/Sub (Cloud Storage notifications travel over Pub/Sub); with secrets Secret Manager.
  apis = var.enable_apis ? toset(concat(
    ["iam.googleapis.com", "run.googleapis.com", "storage.googleapis.com"],
    # Project-level grants (service agents, trigger account) go through Cloud Resource Manager.
    var.events == null ? [] : ["eventarc.googleapis.com", "pubsub.googleapis.com", "cloudresourcemanager.googleapis.com"],
    length(var.secrets) == 0 ? [] : ["secretmanager.googleapis.com"],
  )) : toset([])
}

# The Eventarc service agent exists only once something asks for it; a trigger created before that fails.
# google_project_service_identity does this but exists only in google-beta, so the same API call is
# made with gcloud (idempotent). Set create_eventarc_service_agent = false where it exists already.
resource "terraform_data" "eventarc_service_agent" {
  count            = var.events != null && var.create_eventarc_service_agent ? 1 : 0
  triggers_replace = [var.project_id]

  provisioner "local-exec" {
    command = "gcloud beta services identity create --service=eventarc.googleapis.com --project=${var.project_id}"
  }

  depends_on = [google_project_service.apis]
}

data "google_project" "this" {
  count      = var.events == null ? 0 : 1
  project_id = var.project_id
}

# Agents created on demand do not always get their role (pulumi/pulumi-gcp#1290): grant it explicitly.
resource "google_project_iam_member" "eventarc_service_agent" {
  #checkov:skip=CKV_GCP_49:roles/eventarc.serviceAgent is the role Google defines for its own Eventarc service agent
  count   = var.events == null ? 0 : 1
  project = var.project_id
  role    = "roles/eventarc.serviceAgent"
  # try(): schema-only provider stand-ins (offline CI) return no project number.
  member = try("serviceAccount:service-${data.google_project.this[0].number}@gcp-sa-eventarc.iam.gserviceaccount.com", null)

  depends_on = [terraform_data.eventarc_service_agent]
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
  # First deployment: apply with deploy_service = false (storage only), publish the model, then apply
  # again with the default; the first revision is then ready at once (docs/deploy.md).
  count  = var.deploy_service ? 1 : 0
  source = "../modules/cloud-run"

  project_id              = var.project_id
  region                  = var.region
  events_location         = lower(local.bucket_location)
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

  # The module's IAM-propagation wait runs after these grants, before the Eventarc trigger.
  depends_on = [google_project_service.apis, google_storage_bucket.models, google_project_iam_member.eventarc_service_agent]
}
