# Blob created under the input prefix -> Event Grid system topic on the storage account ->
# webhook https://<fqdn>/events with the shared secret header; retried for a day, then
# dead-lettered to a blob container. Event Grid validates the webhook when the subscription is
# created (the function answers the validation handshake on /events).

resource "azurerm_eventgrid_system_topic" "storage" {
  count               = var.events == null ? 0 : 1
  name                = "${var.name}-storage"
  resource_group_name = var.resource_group_name
  location            = coalesce(var.storage_account_location, var.location)
  source_resource_id  = var.storage_account_id
  topic_type          = "Microsoft.Storage.StorageAccounts"
  tags                = var.labels
}

resource "azurerm_storage_container" "dead_letter" {
  #checkov:skip=CKV2_AZURE_21:blob read logging is a diagnostic-settings choice of the account owner (Log Analytics cost)
  count                 = var.events == null ? 0 : 1
  name                  = "${var.name}-events-deadletter"
  storage_account_id    = var.storage_account_id
  container_access_type = "private"
}

resource "azurerm_eventgrid_system_topic_event_subscription" "uploads" {
  count                = var.events == null ? 0 : 1
  name                 = "${var.name}-uploads"
  system_topic         = azurerm_eventgrid_system_topic.storage[0].name
  resource_group_name  = var.resource_group_name
  included_event_types = ["Microsoft.Storage.BlobCreated"]

  subject_filter {
    subject_begins_with = "/blobServices/default/containers/${local.container}/blobs/${var.events.input_prefix}"
  }

  webhook_endpoint {
    url                  = local.fqdn == null ? null : "https://${local.fqdn}/events"
    max_events_per_batch = 1
  }

  delivery_property {
    header_name = "X-Modelfn-Event-Secret"
    type        = "Static"
    value       = var.events_secret
    secret      = true
  }

  retry_policy {
    max_delivery_attempts = 30
    event_time_to_live    = 1440
  }

  storage_blob_dead_letter_destination {
    storage_account_id          = var.storage_account_id
    storage_blob_container_name = azurerm_storage_container.dead_letter[0].name
  }

  depends_on = [azurerm_container_app.this]
}
