locals {
  model_uri_re = "^gs://(?P<bucket>[a-z0-9][a-z0-9._-]{1,221}[a-z0-9])/(?:(?P<prefix>[^@]+)/)?(?P<model>[a-z0-9][a-z0-9._-]{0,127})(?:@(?P<ref>[A-Za-z0-9][A-Za-z0-9._+-]*))?$"
  model        = regex(local.model_uri_re, var.model_uri)
  bucket       = local.model.bucket
  # Everything the loader reads for this model (manifest, aliases, versions) lives under this prefix.
  model_prefix = "${join("/", compact([local.model.prefix, local.model.model]))}/"

  # Names the module owns; var.env may not override them.
  managed_env = ["MODEL_URI", "PORT", "EVENTS_INPUT_URI", "EVENTS_OUTPUT_URI", "EVENTS_SECRET", "EVENTS_AUTH", "THREADS", "KEEPALIVE_SECONDS", "GOOGLE_CLOUD_PROJECT"]

  # Google's front ends keep idle connections to backends for up to 600 s (a fixed value for the external
  # Application Load Balancer); Gunicorn must keep them longer so the platform always closes first.
  platform_idle_timeout = 600
  serving_env = {
    # One worker; at most `concurrency` requests, plus spare threads so probes always find one.
    THREADS           = tostring(var.concurrency + 4)
    KEEPALIVE_SECONDS = tostring(local.platform_idle_timeout + 20)
    # Request logs then carry logging.googleapis.com/trace, which Cloud Logging correlates.
    GOOGLE_CLOUD_PROJECT = var.project_id
  }

  # Defaults the user may override through var.env. PORT is set by Cloud Run itself.
  default_env = {
    DEVICE           = var.gpu == null ? "cpu" : "cuda"
    LOAD_MODE        = "eager"
    WORKERS          = "1"
    TIMEOUT          = tostring(var.request_timeout_seconds)
    GRACEFUL_TIMEOUT = "8" # Cloud Run sends SIGKILL 10 s after SIGTERM
    # An alias move (promote, canary, rollback) reaches every instance within this; its event reaches one.
    MODEL_POLL_SECONDS = "30"
  }
  events_env = var.events == null ? {} : {
    EVENTS_INPUT_URI  = "gs://${local.bucket}/${var.events.input_prefix}"
    EVENTS_OUTPUT_URI = "gs://${local.bucket}/${var.events.output_prefix}"
    # Eventarc carries no shared secret: the service is private (public is refused with events) and
    # Cloud Run's IAM lets only the trigger's service account invoke it.
    EVENTS_AUTH = "platform"
  }
  env = merge(local.default_env, var.env, local.serving_env, { MODEL_URI = var.model_uri }, local.events_env, local.batch_env)

  limits = merge(
    { cpu = tostring(var.cpu), memory = "${var.memory_mib}Mi" },
    var.gpu == null ? {} : { "nvidia.com/gpu" = "1" },
  )

  # Read on the model prefix; with events also read on inputs and write on outputs.
  object_grants = merge(
    { model = { role = "roles/storage.objectViewer", prefix = local.model_prefix } },
    var.events == null ? {} : {
      input = { role = "roles/storage.objectViewer", prefix = var.events.input_prefix }
      # Outputs are created, read back (idempotency markers) and replaced (markers, error reports):
      # objectUser has get, create and delete (GCS needs delete to overwrite); objectCreator has neither.
      output = { role = "roles/storage.objectUser", prefix = var.events.output_prefix }
    },
  )
  invokers = toset(concat(var.invoker_members, var.public ? ["allUsers"] : []))
}

resource "google_service_account" "service" {
  project      = var.project_id
  account_id   = "${var.name}-run"
  display_name = "modelfn ${var.name} (Cloud Run)"
}

# IAM Conditions scope the grants to object-name prefixes (the bucket needs uniform bucket-level access).
resource "google_storage_bucket_iam_member" "objects" {
  for_each = local.object_grants

  bucket = local.bucket
  role   = each.value.role
  member = google_service_account.service.member

  condition {
    title       = "modelfn-${var.name}-${each.key}"
    description = "Objects under ${each.value.prefix} only"
    expression  = "resource.name.startsWith(\"projects/_/buckets/${local.bucket}/objects/${each.value.prefix}\")"
  }
}

resource "google_secret_manager_secret_iam_member" "env" {
  for_each = var.secrets

  project   = var.project_id
  secret_id = each.value
  role      = "roles/secretmanager.secretAccessor"
  member    = google_service_account.service.member
}

resource "google_cloud_run_v2_service" "this" {
  project              = var.project_id
  name                 = var.name
  location             = var.region
  ingress              = "INGRESS_TRAFFIC_ALL"
  invoker_iam_disabled = false
  deletion_protection  = var.deletion_protection
  labels               = var.labels

  template {
    service_account                  = google_service_account.service.email
    max_instance_request_concurrency = var.concurrency
    timeout                          = "${var.request_timeout_seconds}s"
    execution_environment            = "EXECUTION_ENVIRONMENT_GEN2"
    gpu_zonal_redundancy_disabled    = var.gpu == null ? null : !var.gpu_zonal_redundancy
    labels                           = var.labels

    scaling {
      min_instance_count = var.min_instances
      max_instance_count = var.max_instances
    }

    dynamic "node_selector" {
      for_each = var.gpu == null ? [] : [var.gpu]
      content {
        accelerator = node_selector.value
      }
    }

    containers {
      name  = "modelfn"
      image = var.image

      ports {
        container_port = 8080
      }

      resources {
        limits = local.limits
        # GPU services need instance-based billing; with events the hot-swap check runs after the 202,
        # which gets no CPU when CPU is only allocated during requests.
        cpu_idle          = var.gpu == null && var.events == null
        startup_cpu_boost = true
      }

      dynamic "env" {
        for_each = local.env
        content {
          name  = env.key
          value = env.value
        }
      }

      dynamic "env" {
        for_each = var.secrets
        content {
          name = env.key
          value_source {
            secret_key_ref {
              secret  = env.value
              version = "latest"
            }
          }
        }
      }

      # Cloud Run starts an instance at deploy (even with min 0) and fails the revision if the startup
      # probe never passes: the probe must not need a model, or a first deploy before publishing fails.
      # /healthz answers as soon as Gunicorn serves; requests that arrive while the model loads wait
      # LOAD_WAIT_SECONDS, then get 503 with Retry-After (Eventarc retries those).
      startup_probe {
        http_get {
          path = "/healthz"
        }
        initial_delay_seconds = 0
        period_seconds        = 2
        timeout_seconds       = 2
        failure_threshold     = 60
      }

      liveness_probe {
        http_get {
          path = "/healthz"
        }
        period_seconds    = 15
        timeout_seconds   = 3
        failure_threshold = 3
      }
    }
  }

  depends_on = [google_storage_bucket_iam_member.objects, google_secret_manager_secret_iam_member.env]
}

resource "google_cloud_run_v2_service_iam_member" "invoker" {
  for_each = local.invokers

  project  = var.project_id
  location = var.region
  name     = google_cloud_run_v2_service.this.name
  role     = "roles/run.invoker"
  member   = each.value
}
