# Blob created under the input prefix -> Event Grid system topic on the storage account ->
# webhook https://<fqdn>/events with the shared secret header; retried for a day, then
# dead-lettered to a blob container. Event Grid validates the webhook synchronously when the
# subscription is created: the app answers the handshake without a model, but the ingress routes
# only to a ready replica (/readyz), so the subscription waits for the endpoint (see docs/deploy.md).

locals {
  events_on = var.events != null
  # A storage account has at most one system topic: reuse it when it exists.
  create_topic = local.events_on && var.existing_system_topic == null
  topic_name = !local.events_on ? null : (
    local.create_topic ? "${var.name}-storage" : var.existing_system_topic.name
  )
  topic_resource_group = local.create_topic || !local.events_on ? var.resource_group_name : var.existing_system_topic.resource_group_name
  topic_principal_id = !local.events_on ? null : (
    local.create_topic
    ? one(azurerm_eventgrid_system_topic.storage[0].identity[*].principal_id)
    : one(data.azurerm_eventgrid_system_topic.existing[0].identity[*].principal_id)
  )
}

resource "azurerm_eventgrid_system_topic" "storage" {
  count               = local.create_topic ? 1 : 0
  name                = local.topic_name
  resource_group_name = var.resource_group_name
  location            = coalesce(var.storage_account_location, var.location)
  source_resource_id  = var.storage_account_id
  topic_type          = "Microsoft.Storage.StorageAccounts"
  tags                = var.labels

  # Dead-lettering authenticates with this identity: the account has shared keys disabled.
  identity {
    type = "SystemAssigned"
  }
}

data "azurerm_eventgrid_system_topic" "existing" {
  count               = local.events_on && !local.create_topic ? 1 : 0
  name                = var.existing_system_topic.name
  resource_group_name = var.existing_system_topic.resource_group_name
}

resource "azurerm_storage_container" "dead_letter" {
  #checkov:skip=CKV2_AZURE_21:blob read logging is a diagnostic-settings choice of the account owner (Log Analytics cost)
  count                 = local.events_on ? 1 : 0
  name                  = "${var.name}-events-deadletter"
  storage_account_id    = var.storage_account_id
  container_access_type = "private"
}

resource "azurerm_role_assignment" "dead_letter" {
  count                = local.events_on ? 1 : 0
  scope                = azurerm_storage_container.dead_letter[0].id
  role_definition_name = "Storage Blob Data Contributor"
  principal_id         = local.topic_principal_id
  principal_type       = "ServicePrincipal"
  description          = "Event Grid system topic ${local.topic_name}: dead-letter undeliverable events"

  lifecycle {
    precondition {
      condition     = local.create_topic || local.topic_principal_id != null
      error_message = "existing_system_topic needs a system-assigned identity (dead-lettering authenticates with it)."
    }
  }
}

# Waits for role propagation, then until https://<fqdn>/readyz answers 200 (this also wakes a
# scaled-to-zero app), so the synchronous validation handshake reaches a ready replica.
resource "terraform_data" "endpoint_ready" {
  count = local.events_on ? 1 : 0
  input = [azurerm_container_app.this.latest_revision_name, azurerm_role_assignment.dead_letter[0].id]

  provisioner "local-exec" {
    interpreter = ["/bin/sh", "-c"]
    command     = <<-EOT
      sleep ${var.iam_propagation_seconds}
      tries=${ceil(var.endpoint_wait_seconds / 10)}
      while [ "$tries" -gt 0 ]; do
        curl -fsS -o /dev/null --max-time 10 "https://${local.fqdn}/readyz" && exit 0
        tries=$((tries - 1)); sleep 10
      done
      [ "${var.endpoint_wait_seconds}" -eq 0 ] && exit 0
      echo "https://${local.fqdn}/readyz never answered 200: publish the model first (docs/deploy.md), then apply again" >&2
      exit 1
    EOT
  }
}

resource "azurerm_eventgrid_system_topic_event_subscription" "uploads" {
  count                = local.events_on ? 1 : 0
  name                 = "${var.name}-uploads"
  system_topic         = local.topic_name
  resource_group_name  = local.topic_resource_group
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

  dead_letter_identity {
    type = "SystemAssigned"
  }

  storage_blob_dead_letter_destination {
    storage_account_id          = var.storage_account_id
    storage_blob_container_name = azurerm_storage_container.dead_letter[0].name
  }

  depends_on = [terraform_data.endpoint_ready]
}
