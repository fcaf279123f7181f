# Contract of the Cloud Run module, checked at plan time with a mocked provider.
mock_provider "google" {
  mock_data "google_storage_project_service_account" {
    defaults = {
      member = "serviceAccount:service-123@gs-project-accounts.iam.gserviceaccount.com"
    }
  }
}

variables {
  project_id = "p"
  region     = "europe-west4"
  name       = "iris"
  image      = "europe-west4-docker.pkg.dev/p/modelfn/modelfn:0.1.0"
  model_uri  = "gs://models-bucket/team/iris@prod"
}

run "scales_to_zero_with_probes" {
  command = plan

  assert {
    condition     = google_cloud_run_v2_service.this.template[0].scaling[0].min_instance_count == 0
    error_message = "min instances must default to 0"
  }
  assert {
    condition     = google_cloud_run_v2_service.this.template[0].containers[0].startup_probe[0].http_get[0].path == "/healthz"
    error_message = "startup probe must be GET /healthz (a first deploy has no model yet)"
  }
  assert {
    condition     = google_cloud_run_v2_service.this.template[0].containers[0].liveness_probe[0].http_get[0].path == "/healthz"
    error_message = "liveness probe must be GET /healthz"
  }
  assert {
    condition     = google_cloud_run_v2_service.this.template[0].containers[0].resources[0].startup_cpu_boost
    error_message = "startup CPU boost must be on"
  }
  assert {
    condition     = google_cloud_run_v2_service.this.template[0].containers[0].ports[0].container_port == 8080
    error_message = "container port must be 8080"
  }
  assert {
    condition     = length(google_eventarc_trigger.uploads) == 0 && length(google_cloud_run_v2_service_iam_member.invoker) == 0
    error_message = "no events and no invokers unless asked"
  }
}

run "env_names_match_settings" {
  command = plan

  variables {
    env = { LOG_LEVEL = "debug" }
    events = {
      input_prefix  = "inputs/"
      output_prefix = "outputs/"
    }
  }

  assert {
    condition = toset([for e in google_cloud_run_v2_service.this.template[0].containers[0].env : e.name]) == toset([
      "MODEL_URI", "DEVICE", "LOAD_MODE", "MODEL_POLL_SECONDS", "WORKERS", "THREADS", "TIMEOUT", "GRACEFUL_TIMEOUT", "LOG_LEVEL",
      "EVENTS_INPUT_URI", "EVENTS_OUTPUT_URI", "EVENTS_AUTH", "KEEPALIVE_SECONDS", "GOOGLE_CLOUD_PROJECT",
    ])
    error_message = "unexpected env var names (PORT must not be set on Cloud Run)"
  }
  assert {
    condition     = output.env["EVENTS_INPUT_URI"] == "gs://models-bucket/inputs/" && output.env["MODEL_URI"] == "gs://models-bucket/team/iris@prod"
    error_message = "event and model URIs must point at the bucket"
  }
  assert {
    condition     = output.env["EVENTS_AUTH"] == "platform"
    error_message = "Eventarc sends no shared secret: the app must be told that Cloud Run's IAM authenticates /events"
  }
}

run "iam_is_read_only_on_model_prefix" {
  command = plan

  assert {
    condition     = keys(google_storage_bucket_iam_member.objects) == ["model"]
    error_message = "without events the service account gets exactly one grant"
  }
  assert {
    condition     = google_storage_bucket_iam_member.objects["model"].role == "roles/storage.objectViewer"
    error_message = "model access must be read-only"
  }
  assert {
    condition     = google_storage_bucket_iam_member.objects["model"].condition[0].expression == "resource.name.startsWith(\"projects/_/buckets/models-bucket/objects/team/iris/\")"
    error_message = "model access must be limited to the model prefix"
  }
  assert {
    condition     = output.bucket == "models-bucket" && output.model_prefix == "team/iris/"
    error_message = "bucket and model prefix are parsed from model_uri"
  }
}

run "private_by_default_public_optional" {
  command = plan

  variables {
    invoker_members = ["group:ml@example.com"]
    public          = true
  }

  assert {
    condition     = toset(keys(google_cloud_run_v2_service_iam_member.invoker)) == toset(["group:ml@example.com", "allUsers"])
    error_message = "run.invoker goes to the named members, plus allUsers only when public"
  }
  assert {
    condition     = alltrue([for m in google_cloud_run_v2_service_iam_member.invoker : m.role == "roles/run.invoker"])
    error_message = "invoker grants must be roles/run.invoker"
  }
}

run "eventarc_trigger_on_finalized_objects" {
  command = plan

  variables {
    events = {
      input_prefix  = "inputs/"
      output_prefix = "outputs/"
    }
  }

  assert {
    condition = toset([for c in google_eventarc_trigger.uploads[0].matching_criteria : "${c.attribute}=${c.value}"]) == toset([
      "type=google.cloud.storage.object.v1.finalized", "bucket=models-bucket",
    ])
    error_message = "trigger must match finalized objects in the model bucket"
  }
  assert {
    condition     = google_eventarc_trigger.uploads[0].destination[0].cloud_run_service[0].path == "/events"
    error_message = "events must be delivered to /events"
  }
  assert {
    condition     = google_project_iam_member.gcs_pubsub_publisher[0].role == "roles/pubsub.publisher"
    error_message = "the Cloud Storage service agent needs pubsub.publisher"
  }
  assert {
    condition     = google_cloud_run_v2_service_iam_member.trigger_invoker[0].role == "roles/run.invoker"
    error_message = "the trigger service account must be able to invoke the service"
  }
  assert {
    condition = (google_storage_bucket_iam_member.objects["input"].role == "roles/storage.objectViewer"
    && google_storage_bucket_iam_member.objects["output"].role == "roles/storage.objectUser")
    error_message = "inputs are read-only; outputs are read back and replaced (markers)"
  }
}

run "gpu_l4" {
  command = plan

  variables {
    gpu        = "nvidia-l4"
    cpu        = 4
    memory_mib = 16384
    image      = "europe-docker.pkg.dev/p/modelfn/modelfn:0.1.0-gpu"
  }

  assert {
    condition     = google_cloud_run_v2_service.this.template[0].node_selector[0].accelerator == "nvidia-l4"
    error_message = "GPU services select nvidia-l4"
  }
  assert {
    condition     = google_cloud_run_v2_service.this.template[0].containers[0].resources[0].limits["nvidia.com/gpu"] == "1"
    error_message = "GPU services request one GPU"
  }
  assert {
    condition     = google_cloud_run_v2_service.this.template[0].gpu_zonal_redundancy_disabled == true
    error_message = "zonal redundancy is off unless asked for"
  }
  assert {
    condition     = output.env["DEVICE"] == "cuda"
    error_message = "GPU services run with DEVICE=cuda"
  }
}

run "gpu_needs_cpu_and_memory_minimums" {
  command = plan

  variables {
    gpu = "nvidia-l4"
  }

  expect_failures = [var.gpu]
}

run "env_may_not_override_managed_names" {
  command = plan

  variables {
    env = { MODEL_URI = "gs://other/x@1" }
  }

  expect_failures = [var.env]
}

run "min_not_above_max" {
  command = plan

  variables {
    min_instances = 5
    max_instances = 2
  }

  expect_failures = [var.max_instances]
}

run "probes_always_find_a_thread_and_keepalive_outlasts_the_front_end" {
  command = plan

  variables {
    concurrency = 16
  }

  assert {
    condition     = output.env["THREADS"] == "20" && google_cloud_run_v2_service.this.template[0].max_instance_request_concurrency == 16
    error_message = "THREADS must be the platform concurrency + 4"
  }
  assert {
    condition     = tonumber(output.env["KEEPALIVE_SECONDS"]) > 600
    error_message = "Gunicorn keep-alive must exceed Google's 600 s backend keep-alive"
  }
  assert {
    condition     = google_cloud_run_v2_service.this.template[0].containers[0].resources[0].cpu_idle == true
    error_message = "without events CPU is allocated only during requests"
  }
}

run "events_keep_cpu_and_use_a_lower_case_location" {
  command = plan

  variables {
    events_location = "EUROPE-WEST4"
    events = {
      input_prefix  = "inputs/"
      output_prefix = "outputs/"
    }
  }

  assert {
    condition     = google_cloud_run_v2_service.this.template[0].containers[0].resources[0].cpu_idle == false
    error_message = "with events the background hot-swap check needs CPU after the response"
  }
  assert {
    condition     = google_eventarc_trigger.uploads[0].location == "europe-west4"
    error_message = "the Eventarc trigger location must be lower case"
  }
}

run "public_events_are_refused" {
  command = plan

  variables {
    public = true
    events = {
      input_prefix  = "inputs/"
      output_prefix = "outputs/"
    }
  }

  expect_failures = [var.public]
}

run "cpu_memory_pairs" {
  command = plan

  variables {
    cpu        = 1
    memory_mib = 8192
  }

  expect_failures = [var.memory_mib]
}

run "service_account_id_length_with_events" {
  command = plan

  variables {
    name = "a-very-long-service-name"
    events = {
      input_prefix  = "inputs/"
      output_prefix = "outputs/"
    }
  }

  expect_failures = [var.events]
}

run "gpu_needs_the_gpu_image" {
  command = plan

  variables {
    gpu        = "nvidia-l4"
    cpu        = 4
    memory_mib = 16384
  }

  expect_failures = [var.gpu]
}
