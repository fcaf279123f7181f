# Azure RBAC cannot scope a role below a container, so ABAC conditions restrict the blob data
# actions to path prefixes: Storage Blob Data Reader on the model prefix (and the input prefix with
# events), Storage Blob Data Contributor on the output prefix only (read back, write, overwrite).

locals {
  blob_path = "@Resource[Microsoft.Storage/storageAccounts/blobServices/containers/blobs:path]"
  read_prefixes = merge(
    { model = local.model_prefix },
    var.events == null ? {} : { input = var.events.input_prefix },
  )
  write_actions = ["read", "write", "delete", "add/action", "move/action"]
}

# ONE assignment per identity, role and scope: Azure answers 409 RoleAssignmentExists for a second one
# (conditions do not make assignments distinct), so the read condition ORs the prefixes.
resource "azurerm_role_assignment" "blob_reader" {
  scope                = local.container_scope
  role_definition_name = "Storage Blob Data Reader"
  principal_id         = azurerm_user_assigned_identity.this.principal_id
  principal_type       = "ServicePrincipal"
  description          = "modelfn ${var.name}: read ${join(", ", values(local.read_prefixes))} only"
  condition_version    = "2.0"
  condition = format("((!(ActionMatches{'%s'})) OR (%s))",
    "Microsoft.Storage/storageAccounts/blobServices/containers/blobs/read",
    join(" OR ", [for p in values(local.read_prefixes) : "${local.blob_path} StringStartsWith '${p}'"]),
  )
}

resource "azurerm_role_assignment" "blob_output" {
  count                = var.events == null ? 0 : 1
  scope                = local.container_scope
  role_definition_name = "Storage Blob Data Contributor"
  principal_id         = azurerm_user_assigned_identity.this.principal_id
  principal_type       = "ServicePrincipal"
  description          = "modelfn ${var.name}: write ${var.events.output_prefix} only"
  condition_version    = "2.0"
  condition = format("((%s) OR (%s StringStartsWith '%s'))",
    join(" AND ", [for a in local.write_actions : "!(ActionMatches{'Microsoft.Storage/storageAccounts/blobServices/containers/blobs/${a}'})"]),
    local.blob_path, var.events.output_prefix,
  )
}

resource "azurerm_role_assignment" "acr_pull" {
  count                = var.acr_id == null ? 0 : 1
  scope                = var.acr_id
  role_definition_name = "AcrPull"
  principal_id         = azurerm_user_assigned_identity.this.principal_id
  principal_type       = "ServicePrincipal"
}
