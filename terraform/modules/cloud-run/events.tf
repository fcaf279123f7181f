# Eventarc: object finalized in the bucket -> POST /events on the service, authenticated with OIDC
# (the trigger's service account holds roles/run.invoker; no shared secret on this cloud).
# Eventarc cannot filter Cloud Storage events by object prefix: the function ignores objects
# outside EVENTS_INPUT_URI.

data "google_storage_project_service_account" "gcs" {
  count   = var.events == null ? 0 : 1
  project = var.project_id
}

# The Cloud Storage service agent publishes the bucket's notifications to Pub/Sub for Eventarc.
resource "google_project_iam_member" "gcs_pubsub_publisher" {
  count   = var.events == null ? 0 : 1
  project = var.project_id
  role    = "roles/pubsub.publisher"
  member  = data.google_storage_project_service_account.gcs[0].member
}

resource "google_service_account" "trigger" {
  count        = var.events == null ? 0 : 1
  project      = var.project_id
  account_id   = "${var.name}-events"
  display_name = "modelfn ${var.name} (Eventarc trigger)"
}

resource "google_project_iam_member" "trigger_receiver" {
  count   = var.events == null ? 0 : 1
  project = var.project_id
  role    = "roles/eventarc.eventReceiver"
  member  = google_service_account.trigger[0].member
}

resource "google_cloud_run_v2_service_iam_member" "trigger_invoker" {
  count    = var.events == null ? 0 : 1
  project  = var.project_id
  location = var.region
  name     = google_cloud_run_v2_service.this.name
  role     = "roles/run.invoker"
  member   = google_service_account.trigger[0].member
}

# IAM grants take minutes to propagate, and a trigger created before the service agents' roles are
# visible fails ("Permission denied while using the Eventarc Service Agent"). No provider in the
# supported set offers a wait, so a local sleep stands in (skipped when iam_propagation_seconds is 0).
resource "terraform_data" "iam_propagation" {
  count = var.events == null ? 0 : 1
  input = [
    google_project_iam_member.gcs_pubsub_publisher[0].id,
    google_project_iam_member.trigger_receiver[0].id,
    google_cloud_run_v2_service_iam_member.trigger_invoker[0].id,
  ]

  provisioner "local-exec" {
    command = "sleep ${var.iam_propagation_seconds}"
  }
}

resource "google_eventarc_trigger" "uploads" {
  count   = var.events == null ? 0 : 1
  project = var.project_id
  name    = "${var.name}-uploads"
  # Eventarc wants lower-case locations; buckets report theirs upper-case (US, EUROPE-WEST1).
  location        = lower(coalesce(var.events_location, var.region))
  service_account = google_service_account.trigger[0].email
  labels          = var.labels

  matching_criteria {
    attribute = "type"
    value     = "google.cloud.storage.object.v1.finalized"
  }

  matching_criteria {
    attribute = "bucket"
    value     = local.bucket
  }

  destination {
    cloud_run_service {
      service = google_cloud_run_v2_service.this.name
      region  = var.region
      path    = "/events"
    }
  }

  depends_on = [terraform_data.iam_propagation]
}
