locals {
  model_uri_re = "^az://(?P<bucket>[a-z0-9](?:[a-z0-9]|-[a-z0-9]){2,62})/(?:(?P<prefix>[^@]+)/)?(?P<model>[a-z0-9][a-z0-9._-]{0,127})(?:@(?P<ref>[A-Za-z0-9][A-Za-z0-9._+-]*))?$"
  model        = regex(local.model_uri_re, var.model_uri)
  container    = local.model.bucket
  # Everything the loader reads for this model (manifest, aliases, versions) lives under this prefix.
  model_prefix    = "${join("/", compact([local.model.prefix, local.model.model]))}/"
  account_name    = regex("storageAccounts/([a-z0-9]+)$", var.storage_account_id)[0]
  account_url     = "https://${local.account_name}.blob.core.windows.net"
  container_scope = "${var.storage_account_id}/blobServices/default/containers/${local.container}"
  # External ingress FQDN: <app>.<environment default domain>. Null until the environment exists
  # (schema-only providers never fill computed values), so no string is built from a null.
  default_domain = azurerm_container_app_environment.this.default_domain
  fqdn           = local.default_domain == null ? null : "${var.name}.${local.default_domain}"

  gpu_profiles = { "nvidia-t4" = "Consumption-GPU-NC8as-T4", "nvidia-a100" = "Consumption-GPU-NC24-A100" }

  # Names the module owns; var.env may not override them.
  managed_env = ["MODEL_URI", "PORT", "AZURE_STORAGE_ACCOUNT_URL", "AZURE_CLIENT_ID", "EVENTS_INPUT_URI", "EVENTS_OUTPUT_URI", "EVENTS_SECRET", "THREADS", "KEEPALIVE_SECONDS"]

  # The Container Apps ingress (Envoy) holds a request for at most 240 s and does not document a
  # separate idle timeout; Gunicorn keeps idle connections longer than that so the ingress closes first.
  platform_idle_timeout = 240
  serving_env = {
    # One worker; at most `concurrency` requests (the HTTP scale rule), plus spare threads for probes.
    THREADS           = tostring(var.concurrency + 4)
    KEEPALIVE_SECONDS = tostring(local.platform_idle_timeout + 20)
  }

  default_env = {
    DEVICE    = var.gpu == null ? "cpu" : "cuda"
    LOAD_MODE = "eager"
    WORKERS   = "1"
    TIMEOUT   = tostring(var.request_timeout_seconds)
    # An alias move (promote, canary, rollback) reaches every instance within this; its event reaches one.
    MODEL_POLL_SECONDS = "30"
  }
  events_env = var.events == null ? {} : {
    EVENTS_INPUT_URI  = "az://${local.container}/${var.events.input_prefix}"
    EVENTS_OUTPUT_URI = "az://${local.container}/${var.events.output_prefix}"
  }
  env = merge(local.default_env, var.env, local.serving_env, {
    MODEL_URI                 = var.model_uri
    PORT                      = "8080"
    AZURE_STORAGE_ACCOUNT_URL = local.account_url
    AZURE_CLIENT_ID           = azurerm_user_assigned_identity.this.client_id # DefaultAzureCredential picks this identity
  }, local.events_env, local.batch_env)

  # Container Apps secret names: lowercase alphanumerics and '-'.
  kv_secrets = { for k, v in var.secrets : k => { name = lower(replace(k, "_", "-")), id = v } }
}

resource "azurerm_log_analytics_workspace" "this" {
  name                = "${var.name}-logs"
  location            = var.location
  resource_group_name = var.resource_group_name
  sku                 = "PerGB2018"
  retention_in_days   = var.log_retention_days
  tags                = var.labels
}

resource "azurerm_container_app_environment" "this" {
  name                       = "${var.name}-env"
  location                   = var.location
  resource_group_name        = var.resource_group_name
  log_analytics_workspace_id = azurerm_log_analytics_workspace.this.id
  tags                       = var.labels

  # Without a GPU the environment is Consumption-only; a GPU needs workload profiles (Consumption + serverless GPU).
  dynamic "workload_profile" {
    for_each = var.gpu == null ? {} : { Consumption = "Consumption", gpu = local.gpu_profiles[var.gpu] }
    content {
      name                  = workload_profile.key
      workload_profile_type = workload_profile.value
    }
  }
}

resource "azurerm_user_assigned_identity" "this" {
  name                = "${var.name}-id"
  location            = var.location
  resource_group_name = var.resource_group_name
  tags                = var.labels
}

resource "azurerm_container_app" "this" {
  name                         = var.name
  resource_group_name          = var.resource_group_name
  container_app_environment_id = azurerm_container_app_environment.this.id
  revision_mode                = "Single"
  workload_profile_name        = var.gpu == null ? null : "gpu"
  tags                         = var.labels

  identity {
    type         = "UserAssigned"
    identity_ids = [azurerm_user_assigned_identity.this.id]
  }

  dynamic "registry" {
    for_each = var.acr_id == null ? [] : [split("/", var.image)[0]]
    content {
      server   = registry.value
      identity = azurerm_user_assigned_identity.this.id
    }
  }

  dynamic "secret" {
    for_each = local.kv_secrets
    content {
      name                = secret.value.name
      key_vault_secret_id = secret.value.id
      identity            = azurerm_user_assigned_identity.this.id
    }
  }

  dynamic "secret" {
    for_each = var.events == null ? [] : ["events-secret"]
    content {
      name  = secret.value
      value = var.events_secret
    }
  }

  ingress {
    external_enabled           = true
    target_port                = 8080
    transport                  = "http"
    allow_insecure_connections = false

    traffic_weight {
      latest_revision = true
      percentage      = 100
    }
  }

  template {
    min_replicas                     = var.min_instances
    max_replicas                     = var.max_instances
    termination_grace_period_seconds = 30

    http_scale_rule {
      name                = "http-concurrency"
      concurrent_requests = tostring(var.concurrency)
    }

    container {
      name   = "modelfn"
      image  = var.image
      cpu    = var.cpu
      memory = "${var.memory_mib / 1024}Gi"

      dynamic "env" {
        for_each = local.env
        content {
          name  = env.key
          value = env.value
        }
      }

      dynamic "env" {
        for_each = local.kv_secrets
        content {
          name        = env.key
          secret_name = env.value.name
        }
      }

      dynamic "env" {
        for_each = var.events == null ? [] : ["EVENTS_SECRET"]
        content {
          name        = env.value
          secret_name = "events-secret"
        }
      }

      # Startup only needs Gunicorn (/healthz), so a revision deploys before any model is published;
      # readiness (/readyz) keeps the ingress from routing predictions to a replica still loading.
      startup_probe {
        transport               = "HTTP"
        port                    = 8080
        path                    = "/healthz"
        interval_seconds        = 3
        timeout                 = 3
        failure_count_threshold = 20
      }

      readiness_probe {
        transport               = "HTTP"
        port                    = 8080
        path                    = "/readyz"
        interval_seconds        = 5
        timeout                 = 5
        failure_count_threshold = 3
      }

      liveness_probe {
        transport               = "HTTP"
        port                    = 8080
        path                    = "/healthz"
        interval_seconds        = 15
        timeout                 = 5
        failure_count_threshold = 3
      }
    }
  }

  depends_on = [azurerm_role_assignment.blob_reader, azurerm_role_assignment.blob_output, azurerm_role_assignment.acr_pull]
}
