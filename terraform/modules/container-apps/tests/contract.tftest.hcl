# Contract of the Container Apps module, checked at plan time with a mocked provider.
mock_provider "azurerm" {
  mock_resource "azurerm_container_app_environment" {
    defaults = {
      default_domain = "happy-river-123.westeurope.azurecontainerapps.io"
    }
    override_during = plan
  }
}

variables {
  resource_group_name = "rg"
  location            = "westeurope"
  name                = "iris"
  image               = "mlregistry.azurecr.io/modelfn:0.1.0"
  model_uri           = "az://models/team/iris@prod"
  storage_account_id  = "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Storage/storageAccounts/mlmodels"
}

run "scales_to_zero_with_probes" {
  command = plan

  assert {
    condition     = azurerm_container_app.this.template[0].min_replicas == 0
    error_message = "min replicas must default to 0"
  }
  assert {
    condition     = azurerm_container_app.this.template[0].http_scale_rule[0].concurrent_requests == "8"
    error_message = "HTTP scale rule on concurrent requests"
  }
  assert {
    condition = (azurerm_container_app.this.template[0].container[0].startup_probe[0].path == "/healthz"
      && azurerm_container_app.this.template[0].container[0].readiness_probe[0].path == "/readyz"
    && azurerm_container_app.this.template[0].container[0].liveness_probe[0].path == "/healthz")
    error_message = "startup and liveness on /healthz (no model needed), readiness on /readyz"
  }
  assert {
    condition     = azurerm_container_app.this.ingress[0].external_enabled && azurerm_container_app.this.ingress[0].target_port == 8080 && !azurerm_container_app.this.ingress[0].allow_insecure_connections
    error_message = "external HTTPS ingress to port 8080"
  }
  assert {
    condition     = output.url == "https://iris.happy-river-123.westeurope.azurecontainerapps.io"
    error_message = "url is the app's FQDN"
  }
  assert {
    condition     = length(azurerm_eventgrid_system_topic_event_subscription.uploads) == 0 && length(azurerm_container_app_environment.this.workload_profile) == 0
    error_message = "no events and no workload profiles unless asked"
  }
}

run "env_names_match_settings" {
  command = plan

  variables {
    env           = { LOG_LEVEL = "debug" }
    events_secret = "0123456789abcdef0123"
    events = {
      input_prefix  = "inputs/"
      output_prefix = "outputs/"
    }
  }

  assert {
    condition = toset([for e in azurerm_container_app.this.template[0].container[0].env : e.name]) == toset([
      "MODEL_URI", "PORT", "AZURE_STORAGE_ACCOUNT_URL", "AZURE_CLIENT_ID", "DEVICE", "LOAD_MODE", "MODEL_POLL_SECONDS", "WORKERS", "THREADS",
      "TIMEOUT", "LOG_LEVEL", "EVENTS_INPUT_URI", "EVENTS_OUTPUT_URI", "EVENTS_SECRET", "KEEPALIVE_SECONDS",
    ])
    error_message = "unexpected env var names"
  }
  assert {
    condition     = output.env["AZURE_STORAGE_ACCOUNT_URL"] == "https://mlmodels.blob.core.windows.net" && output.env["EVENTS_INPUT_URI"] == "az://models/inputs/"
    error_message = "account URL and event URIs come from the storage account and container"
  }
}

run "iam_is_read_only_on_model_prefix" {
  command = plan

  assert {
    condition     = length(azurerm_role_assignment.blob_output) == 0
    error_message = "without events the identity gets one read-only assignment"
  }
  assert {
    condition     = azurerm_role_assignment.blob_reader.role_definition_name == "Storage Blob Data Reader"
    error_message = "model access is Storage Blob Data Reader"
  }
  assert {
    condition     = azurerm_role_assignment.blob_reader.scope == "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Storage/storageAccounts/mlmodels/blobServices/default/containers/models"
    error_message = "the reader role is scoped to the model container"
  }
  assert {
    condition     = strcontains(azurerm_role_assignment.blob_reader.condition, "StringStartsWith 'team/iris/'")
    error_message = "reads are limited to the model prefix by an ABAC condition"
  }
}

run "event_grid_to_events_endpoint" {
  command = plan

  variables {
    events_secret = "0123456789abcdef0123"
    events = {
      input_prefix  = "inputs/"
      output_prefix = "outputs/"
    }
  }

  assert {
    condition     = azurerm_eventgrid_system_topic_event_subscription.uploads[0].included_event_types == tolist(["Microsoft.Storage.BlobCreated"])
    error_message = "only BlobCreated events"
  }
  assert {
    condition     = azurerm_eventgrid_system_topic_event_subscription.uploads[0].subject_filter[0].subject_begins_with == "/blobServices/default/containers/models/blobs/inputs/"
    error_message = "only blobs under the input prefix"
  }
  assert {
    condition     = azurerm_eventgrid_system_topic_event_subscription.uploads[0].webhook_endpoint[0].url == "https://iris.happy-river-123.westeurope.azurecontainerapps.io/events"
    error_message = "events go to https://<fqdn>/events"
  }
  assert {
    condition = anytrue([for p in azurerm_eventgrid_system_topic_event_subscription.uploads[0].delivery_property :
    p.header_name == "X-Modelfn-Event-Secret" && p.secret])
    error_message = "the shared secret is sent as a secret delivery header"
  }
  assert {
    condition     = length(azurerm_eventgrid_system_topic_event_subscription.uploads[0].storage_blob_dead_letter_destination) == 1 && azurerm_eventgrid_system_topic_event_subscription.uploads[0].retry_policy[0].max_delivery_attempts > 1
    error_message = "retries, then dead-lettering to a blob container"
  }
  assert {
    condition     = azurerm_role_assignment.blob_output[0].role_definition_name == "Storage Blob Data Contributor" && strcontains(azurerm_role_assignment.blob_output[0].condition, "StringStartsWith 'outputs/'")
    error_message = "writes are limited to the output prefix"
  }
  assert {
    condition = (strcontains(azurerm_role_assignment.blob_reader.condition, "StringStartsWith 'team/iris/'")
    && strcontains(azurerm_role_assignment.blob_reader.condition, "StringStartsWith 'inputs/'"))
    error_message = "one reader assignment whose condition ORs the model and input prefixes"
  }
  assert {
    condition     = azurerm_eventgrid_system_topic_event_subscription.uploads[0].dead_letter_identity[0].type == "SystemAssigned" && azurerm_eventgrid_system_topic.storage[0].identity[0].type == "SystemAssigned"
    error_message = "dead-lettering authenticates with the topic's identity (shared keys are off)"
  }
  assert {
    condition     = length(terraform_data.endpoint_ready) == 1
    error_message = "the subscription waits for role propagation and a ready endpoint"
  }
}

run "existing_system_topic_is_reused" {
  command = plan

  override_data {
    target = data.azurerm_eventgrid_system_topic.existing[0]
    values = {
      identity = [{ type = "SystemAssigned", principal_id = "00000000-0000-0000-0000-000000000001", tenant_id = "t", identity_ids = [] }]
    }
  }

  variables {
    events_secret         = "0123456789abcdef0123"
    existing_system_topic = { name = "account-topic", resource_group_name = "storage-rg" }
    events = {
      input_prefix  = "inputs/"
      output_prefix = "outputs/"
    }
  }

  assert {
    condition     = length(azurerm_eventgrid_system_topic.storage) == 0
    error_message = "no second system topic for the account"
  }
  assert {
    condition     = azurerm_eventgrid_system_topic_event_subscription.uploads[0].system_topic == "account-topic" && azurerm_eventgrid_system_topic_event_subscription.uploads[0].resource_group_name == "storage-rg"
    error_message = "the subscription goes on the existing topic"
  }
}

run "probes_always_find_a_thread_and_keepalive_outlasts_the_ingress" {
  command = plan

  assert {
    condition     = output.env["THREADS"] == "12" && azurerm_container_app.this.template[0].http_scale_rule[0].concurrent_requests == "8"
    error_message = "THREADS must be the per-replica concurrency + 4"
  }
  assert {
    condition     = tonumber(output.env["KEEPALIVE_SECONDS"]) > 240
    error_message = "Gunicorn keep-alive must exceed the ingress's 240 s"
  }
}

run "gpu_workload_profile" {
  command = plan

  variables {
    gpu        = "nvidia-t4"
    cpu        = 8
    memory_mib = 57344
  }

  assert {
    condition     = azurerm_container_app.this.workload_profile_name == "gpu" && contains([for p in azurerm_container_app_environment.this.workload_profile : p.workload_profile_type], "Consumption-GPU-NC8as-T4")
    error_message = "a GPU app runs on the serverless GPU workload profile"
  }
}

run "events_need_a_secret" {
  command = plan

  variables {
    events = {
      input_prefix  = "inputs/"
      output_prefix = "outputs/"
    }
  }

  expect_failures = [var.events_secret]
}

run "consumption_sizes" {
  command = plan

  variables {
    cpu        = 1
    memory_mib = 4096
  }

  expect_failures = [var.memory_mib]
}
