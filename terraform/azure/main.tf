locals {
  container          = regex("^az://([^/]+)/", var.model_uri)[0]
  storage_account_rg = coalesce(var.storage_account_resource_group, var.resource_group_name)
  # Built from inputs (not read from the resource) so the module's inputs are known at plan time.
  storage_account_id = "/subscriptions/${var.subscription_id}/resourceGroups/${local.storage_account_rg}/providers/Microsoft.Storage/storageAccounts/${var.storage_account_name}"
}

resource "azurerm_resource_group" "this" {
  count    = var.create_resource_group ? 1 : 0
  name     = var.resource_group_name
  location = var.location
  tags     = var.labels
}

resource "azurerm_storage_account" "models" {
  #checkov:skip=CKV2_AZURE_1:customer-managed keys are optional; Microsoft-managed encryption is on
  #checkov:skip=CKV2_AZURE_33:a private endpoint needs a VNet-integrated environment; Event Grid and the app reach storage over the public endpoint with Entra ID auth
  #checkov:skip=CKV_AZURE_59:public network access is needed by Event Grid dead-lettering and the Consumption environment (no VNet); shared keys are off
  #checkov:skip=CKV_AZURE_206:replication level is a cost choice (LRS default); models can be re-published
  #checkov:skip=CKV_AZURE_33:queue service logging does not apply; the account serves blobs only
  #checkov:skip=CKV2_AZURE_41:no SAS tokens are used (shared keys disabled)
  count                           = var.create_storage_account ? 1 : 0
  name                            = var.storage_account_name
  resource_group_name             = local.storage_account_rg
  location                        = var.location
  account_tier                    = "Standard"
  account_replication_type        = "LRS"
  min_tls_version                 = "TLS1_2"
  https_traffic_only_enabled      = true
  allow_nested_items_to_be_public = false
  shared_access_key_enabled       = false
  local_user_enabled              = false
  tags                            = var.labels

  blob_properties {
    versioning_enabled = true

    delete_retention_policy {
      days = 7
    }

    container_delete_retention_policy {
      days = 7
    }
  }

  depends_on = [azurerm_resource_group.this]
}

resource "azurerm_storage_container" "models" {
  #checkov:skip=CKV2_AZURE_21:blob read logging is a diagnostic-settings choice of the account owner (Log Analytics cost)
  count                 = var.create_storage_account ? 1 : 0
  name                  = local.container
  storage_account_id    = azurerm_storage_account.models[0].id
  container_access_type = "private"
}

module "service" {
  # First deployment: apply with deploy_service = false (storage only), publish the model, then apply
  # again with the default; the first revision is then ready at once (docs/deploy.md).
  count  = var.deploy_service ? 1 : 0
  source = "../modules/container-apps"

  resource_group_name = var.resource_group_name
  location            = var.location
  storage_account_id  = local.storage_account_id
  # The system topic lives where the account does (a pre-existing account may be in another region).
  storage_account_location = coalesce(var.storage_account_location, var.location)
  existing_system_topic    = var.existing_system_topic
  acr_id                   = var.acr_id
  name                     = var.name
  image                    = var.image
  model_uri                = var.model_uri
  env                      = var.env
  secrets                  = var.secrets
  cpu                      = var.cpu
  memory_mib               = var.memory_mib
  min_instances            = var.min_instances
  max_instances            = var.max_instances
  concurrency              = var.concurrency
  request_timeout_seconds  = var.request_timeout_seconds
  gpu                      = var.gpu
  events                   = var.events
  events_secret            = var.events_secret
  labels                   = var.labels

  depends_on = [azurerm_resource_group.this, azurerm_storage_container.models]
}
