# Batch jobs: off by default; one variable adds the Cloud Run job, its identity and the service's wiring.
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
  events = {
    input_prefix  = "inputs/"
    output_prefix = "outputs/"
  }
}

run "off_by_default" {
  command = plan

  assert {
    condition     = length(google_cloud_run_v2_job.batch) == 0 && length(google_storage_bucket_iam_member.batch) == 0
    error_message = "no batch job unless batch_jobs is set"
  }
  assert {
    condition     = !contains([for e in google_cloud_run_v2_service.this.template[0].containers[0].env : e.name], "BATCH_LAUNCHER")
    error_message = "the service must not launch jobs when they are off"
  }
}

run "one_variable_turns_it_on" {
  command = apply

  variables {
    batch_jobs = { max_tasks = 50, task_target_mib = 128, output_format = "parquet" }
  }

  assert {
    condition     = google_cloud_run_v2_job.batch[0].template[0].template[0].containers[0].command == tolist(["python", "-m", "function.cli", "batch", "run"])
    error_message = "the job runs modelfn batch run from the same image"
  }
  assert {
    condition     = google_cloud_run_v2_job.batch[0].template[0].template[0].containers[0].image == var.image
    error_message = "the job uses the service's image"
  }
  assert {
    condition     = google_cloud_run_v2_job.batch[0].template[0].template[0].service_account == google_service_account.batch[0].email
    error_message = "batch tasks run as their own identity"
  }
  assert {
    condition = {
      for e in google_cloud_run_v2_service.this.template[0].containers[0].env : e.name => e.value if startswith(e.name, "BATCH_")
      } == {
      BATCH_LAUNCHER          = "cloud-run"
      BATCH_JOB_NAME          = "projects/p/locations/europe-west4/jobs/iris-batch"
      BATCH_CONTAINER_NAME    = "modelfn"
      BATCH_INLINE_MAX_BYTES  = "268435456"
      BATCH_TASK_TARGET_BYTES = "134217728"
      BATCH_MAX_TASKS         = "50"
    }
    error_message = "the service gets exactly the settings it needs to launch the job"
  }
  assert {
    condition     = { for e in google_cloud_run_v2_job.batch[0].template[0].template[0].containers[0].env : e.name => e.value }["BATCH_OUTPUT_FORMAT"] == "parquet"
    error_message = "the output format reaches the tasks"
  }
  assert {
    condition     = google_cloud_run_v2_job_iam_member.service_runs_batch[0].role == "roles/run.jobsExecutorWithOverrides" && google_cloud_run_v2_job_iam_member.service_runs_batch[0].member == google_service_account.service.member
    error_message = "the service's identity may run the job with overrides"
  }
  assert {
    condition     = { for k, g in google_storage_bucket_iam_member.batch : k => g.role } == { model = "roles/storage.objectViewer", input = "roles/storage.objectViewer", output = "roles/storage.objectUser" }
    error_message = "a shard reads the model and inputs and writes only outputs"
  }
  assert {
    condition     = strcontains(google_storage_bucket_iam_member.batch["output"].condition[0].expression, "objects/outputs/") && strcontains(google_storage_bucket_iam_member.batch["input"].condition[0].expression, "objectListPrefix")
    error_message = "every batch grant is scoped to its prefix"
  }
  assert {
    condition     = output.batch_job == "projects/p/locations/europe-west4/jobs/iris-batch"
    error_message = "the module outputs the job's name"
  }
}

run "needs_events" {
  command = plan

  variables {
    events     = null
    batch_jobs = {}
  }

  expect_failures = [var.batch_jobs]
}
