# Minimal use of the module: a scale-to-zero container app with Blob Storage events.
terraform {
  required_version = ">= 1.9.0"
  required_providers {
    azurerm = {
      source  = "hashicorp/azurerm"
      version = ">= 4.79.0, < 5.0.0"
    }
  }
}

provider "azurerm" {
  features {}
  subscription_id = "00000000-0000-0000-0000-000000000000"
}

variable "events_secret" {
  type        = string
  description = "Shared events secret (TF_VAR_events_secret)."
  sensitive   = true
}

module "modelfn" {
  source = "../.."

  resource_group_name = "rg-modelfn"
  location            = "westeurope"
  name                = "iris"
  image               = "mlregistry.azurecr.io/modelfn:0.1.0"
  acr_id              = "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg-modelfn/providers/Microsoft.ContainerRegistry/registries/mlregistry"
  model_uri           = "az://models/team/iris@prod"
  storage_account_id  = "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg-modelfn/providers/Microsoft.Storage/storageAccounts/mlmodels"
  env                 = { LOG_LEVEL = "info" }
  events_secret       = var.events_secret
  events = {
    input_prefix  = "inputs/"
    output_prefix = "outputs/"
  }
}

output "url" {
  value = module.modelfn.url
}
