# Batch inference at any size: a Cloud Run job running the same image's `modelfn batch run`, started
# by the service (POST /events) with Admin API v2 jobs.run for inputs over the inline limit. Each task
# reads CLOUD_RUN_TASK_INDEX / CLOUD_RUN_TASK_COUNT as its shard. Off unless var.batch_jobs is set.

locals {
  batch_on  = var.batch_jobs != null && var.events != null
  batch_job = "${var.name}-batch"
  batch_env = local.batch_on ? {
    BATCH_LAUNCHER          = "cloud-run"
    BATCH_JOB_NAME          = "projects/${var.project_id}/locations/${var.region}/jobs/${local.batch_job}"
    BATCH_CONTAINER_NAME    = "modelfn"
    BATCH_INLINE_MAX_BYTES  = tostring(var.batch_jobs.inline_max_mib * 1048576)
    BATCH_TASK_TARGET_BYTES = tostring(var.batch_jobs.task_target_mib * 1048576)
    BATCH_MAX_TASKS         = tostring(var.batch_jobs.max_tasks)
  } : {}
  batch_task_env = local.batch_on ? merge(local.default_env, var.env, {
    MODEL_URI           = var.model_uri
    BATCH_OUTPUT_FORMAT = var.batch_jobs.output_format
  }) : {}

  # A shard reads the model and its input, and writes (and rewrites) its part, status and _SUCCESS.
  batch_grants = local.batch_on ? {
    model  = { role = "roles/storage.objectViewer", prefix = local.model_prefix }
    input  = { role = "roles/storage.objectViewer", prefix = var.events.input_prefix }
    output = { role = "roles/storage.objectUser", prefix = var.events.output_prefix }
  } : {}
}

resource "google_service_account" "batch" {
  count        = local.batch_on ? 1 : 0
  project      = var.project_id
  account_id   = "${var.name}-batch"
  display_name = "modelfn ${var.name} (batch job)"
}

resource "google_storage_bucket_iam_member" "batch" {
  for_each = local.batch_grants

  bucket = local.bucket
  role   = each.value.role
  member = google_service_account.batch[0].member

  # Object reads/writes under the prefix, and listing only with that prefix (input prefixes, _status/).
  condition {
    title       = "modelfn-${var.name}-batch-${each.key}"
    description = "Objects under ${each.value.prefix} only"
    expression  = "resource.name.startsWith(\"projects/_/buckets/${local.bucket}/objects/${each.value.prefix}\") || api.getAttribute(\"storage.googleapis.com/objectListPrefix\", \"\").startsWith(\"${each.value.prefix}\")"
  }
}

resource "google_cloud_run_v2_job" "batch" {
  count               = local.batch_on ? 1 : 0
  project             = var.project_id
  name                = local.batch_job
  location            = var.region
  deletion_protection = var.deletion_protection
  labels              = var.labels

  template {
    task_count  = 1 # each launch overrides it (taskCount)
    parallelism = var.batch_jobs.parallelism
    labels      = var.labels

    template {
      service_account = google_service_account.batch[0].email
      max_retries     = var.batch_jobs.max_retries # a dead shard is simply run again
      timeout         = "${var.batch_jobs.task_timeout_seconds}s"

      containers {
        name    = "modelfn"
        image   = var.image
        command = ["python", "-m", "function.cli", "batch", "run"]

        resources {
          limits = { cpu = tostring(var.batch_jobs.cpu), memory = "${var.batch_jobs.memory_mib}Mi" }
        }

        dynamic "env" {
          for_each = local.batch_task_env
          content {
            name  = env.key
            value = env.value
          }
        }
      }
    }
  }

  depends_on = [google_storage_bucket_iam_member.batch]
}

# The service may start executions of this job, with overrides (args, task count), and nothing else.
resource "google_cloud_run_v2_job_iam_member" "service_runs_batch" {
  count    = local.batch_on ? 1 : 0
  project  = var.project_id
  location = var.region
  name     = google_cloud_run_v2_job.batch[0].name
  role     = "roles/run.jobsExecutorWithOverrides"
  member   = google_service_account.service.member
}
