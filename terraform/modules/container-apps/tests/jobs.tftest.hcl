# Batch jobs: off by default; one variable adds the Container Apps job, its identity and the service's start rights.
mock_provider "azurerm" {
  mock_resource "azurerm_container_app_environment" {
    defaults = {
      default_domain = "happy-river-123.westeurope.azurecontainerapps.io"
    }
  }
  mock_data "azurerm_client_config" {
    defaults = {
      subscription_id = "00000000-0000-0000-0000-000000000001"
    }
  }
}

variables {
  resource_group_name = "rg"
  location            = "westeurope"
  name                = "iris"
  image               = "mlregistry.azurecr.io/modelfn:0.1.0"
  model_uri           = "az://models/team/iris@prod"
  storage_account_id  = "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Storage/storageAccounts/mlmodels"
  events = {
    input_prefix  = "inputs/"
    output_prefix = "outputs/"
  }
  events_secret = "0123456789abcdef0123456789abcdef"
  # apply runs against mocks: no endpoint to poll, no RBAC to wait for
  endpoint_wait_seconds   = 0
  iam_propagation_seconds = 0
}

run "off_by_default" {
  command = plan

  assert {
    condition     = length(azurerm_container_app_job.batch) == 0 && length(azurerm_role_assignment.service_starts_batch) == 0
    error_message = "no batch job unless batch_jobs is set"
  }
}

run "one_variable_turns_it_on" {
  command = apply

  variables {
    batch_jobs = { max_tasks = 20, cpu = 1 }
  }

  assert {
    condition     = azurerm_container_app_job.batch[0].template[0].container[0].command == tolist(["python", "-m", "function.cli", "batch", "run"]) && azurerm_container_app_job.batch[0].template[0].container[0].image == var.image
    error_message = "the job runs modelfn batch run from the service's image"
  }
  assert {
    condition     = azurerm_container_app_job.batch[0].template[0].container[0].memory == "2Gi" && length(azurerm_container_app_job.batch[0].manual_trigger_config) == 1
    error_message = "a manually triggered job sized from batch_jobs.cpu"
  }
  assert {
    condition     = azurerm_container_app_job.batch[0].identity[0].identity_ids == toset([azurerm_user_assigned_identity.batch[0].id])
    error_message = "batch executions run as their own identity"
  }
  assert {
    condition = {
      for e in azurerm_container_app.this.template[0].container[0].env : e.name => e.value if startswith(e.name, "BATCH_")
      } == {
      BATCH_LAUNCHER              = "container-apps"
      BATCH_JOB_NAME              = "iris-batch"
      BATCH_AZURE_SUBSCRIPTION_ID = "00000000-0000-0000-0000-000000000001"
      BATCH_AZURE_RESOURCE_GROUP  = "rg"
      BATCH_CONTAINER_NAME        = "modelfn"
      BATCH_INLINE_MAX_BYTES      = "268435456"
      BATCH_TASK_TARGET_BYTES     = "268435456"
      BATCH_MAX_TASKS             = "20"
    }
    error_message = "the service gets exactly the settings it needs to start the job"
  }
  assert {
    condition     = azurerm_role_assignment.service_starts_batch[0].scope == azurerm_container_app_job.batch[0].id && azurerm_role_assignment.service_starts_batch[0].principal_id == azurerm_user_assigned_identity.this.principal_id
    error_message = "the service's identity may start this job only"
  }
  assert {
    condition     = strcontains(azurerm_role_assignment.batch_output[0].condition, "StringStartsWith 'outputs/'") && toset(keys(azurerm_role_assignment.batch_reader)) == toset(["model", "input"])
    error_message = "batch executions read the model and inputs and write only outputs"
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
