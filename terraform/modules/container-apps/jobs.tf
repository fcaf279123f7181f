# Batch inference at any size: a manually triggered Container Apps job running the same image's
# `modelfn batch run`, started by the service (POST /events) with jobs.start, one execution per
# shard (the job's own template with `--shard I/N` arguments; replicas get no index). Off unless var.batch_jobs is set.

data "azurerm_client_config" "batch" {
  count = local.batch_on ? 1 : 0
}

locals {
  batch_on  = var.batch_jobs != null && var.events != null
  batch_job = "${var.name}-batch"
  batch_env = local.batch_on ? {
    BATCH_LAUNCHER              = "container-apps"
    BATCH_JOB_NAME              = local.batch_job
    BATCH_AZURE_SUBSCRIPTION_ID = data.azurerm_client_config.batch[0].subscription_id
    BATCH_AZURE_RESOURCE_GROUP  = var.resource_group_name
    BATCH_CONTAINER_NAME        = "modelfn"
    BATCH_INLINE_MAX_BYTES      = tostring(var.batch_jobs.inline_max_mib * 1048576)
    BATCH_TASK_TARGET_BYTES     = tostring(var.batch_jobs.task_target_mib * 1048576)
    BATCH_MAX_TASKS             = tostring(var.batch_jobs.max_tasks)
  } : {}
  batch_task_env = local.batch_on ? merge(local.default_env, var.env, {
    MODEL_URI                 = var.model_uri
    AZURE_STORAGE_ACCOUNT_URL = local.account_url
    AZURE_CLIENT_ID           = azurerm_user_assigned_identity.batch[0].client_id
    BATCH_OUTPUT_FORMAT       = var.batch_jobs.output_format
  }) : {}
  batch_reads = local.batch_on ? { model = local.model_prefix, input = var.events.input_prefix } : {}
}

resource "azurerm_user_assigned_identity" "batch" {
  count               = local.batch_on ? 1 : 0
  name                = "${var.name}-batch-id"
  location            = var.location
  resource_group_name = var.resource_group_name
  tags                = var.labels
}

# The same ABAC scoping as the service: read the model and inputs, write only under the output prefix.
resource "azurerm_role_assignment" "batch_reader" {
  for_each             = local.batch_reads
  scope                = local.container_scope
  role_definition_name = "Storage Blob Data Reader"
  principal_id         = azurerm_user_assigned_identity.batch[0].principal_id
  principal_type       = "ServicePrincipal"
  description          = "modelfn ${var.name} batch: read ${each.value} only"
  condition_version    = "2.0"
  condition            = "((!(ActionMatches{'Microsoft.Storage/storageAccounts/blobServices/containers/blobs/read'})) OR (${local.blob_path} StringStartsWith '${each.value}'))"
}

resource "azurerm_role_assignment" "batch_output" {
  count                = local.batch_on ? 1 : 0
  scope                = local.container_scope
  role_definition_name = "Storage Blob Data Contributor"
  principal_id         = azurerm_user_assigned_identity.batch[0].principal_id
  principal_type       = "ServicePrincipal"
  description          = "modelfn ${var.name} batch: write ${var.events.output_prefix} only"
  condition_version    = "2.0"
  condition = format("((%s) OR (%s StringStartsWith '%s'))",
    join(" AND ", [for a in local.write_actions : "!(ActionMatches{'Microsoft.Storage/storageAccounts/blobServices/containers/blobs/${a}'})"]),
    local.blob_path, var.events.output_prefix,
  )
}

resource "azurerm_role_assignment" "batch_acr_pull" {
  count                = local.batch_on && var.acr_id != null ? 1 : 0
  scope                = var.acr_id
  role_definition_name = "AcrPull"
  principal_id         = azurerm_user_assigned_identity.batch[0].principal_id
  principal_type       = "ServicePrincipal"
}

resource "azurerm_container_app_job" "batch" {
  count                        = local.batch_on ? 1 : 0
  name                         = local.batch_job
  location                     = var.location
  resource_group_name          = var.resource_group_name
  container_app_environment_id = azurerm_container_app_environment.this.id
  replica_timeout_in_seconds   = var.batch_jobs.task_timeout_seconds
  replica_retry_limit          = var.batch_jobs.max_retries # a dead shard is simply run again
  tags                         = var.labels

  manual_trigger_config {
    parallelism              = 1
    replica_completion_count = 1
  }

  identity {
    type         = "UserAssigned"
    identity_ids = [azurerm_user_assigned_identity.batch[0].id]
  }

  dynamic "registry" {
    for_each = var.acr_id == null ? [] : [split("/", var.image)[0]]
    content {
      server   = registry.value
      identity = azurerm_user_assigned_identity.batch[0].id
    }
  }

  template {
    container {
      name    = "modelfn"
      image   = var.image
      command = ["python", "-m", "function.cli", "batch", "run"]
      cpu     = var.batch_jobs.cpu
      memory  = "${var.batch_jobs.cpu * 2}Gi"

      dynamic "env" {
        for_each = local.batch_task_env
        content {
          name  = env.key
          value = env.value
        }
      }
    }
  }

  depends_on = [azurerm_role_assignment.batch_reader, azurerm_role_assignment.batch_output]
}

# The service's identity may start executions of this job (and read it), nothing else.
resource "azurerm_role_assignment" "service_starts_batch" {
  count                = local.batch_on ? 1 : 0
  scope                = azurerm_container_app_job.batch[0].id
  role_definition_name = "Container Apps Jobs Operator"
  principal_id         = azurerm_user_assigned_identity.this.principal_id
  principal_type       = "ServicePrincipal"
}
