# Minimal use of the module: a private, scale-to-zero service with storage events.
terraform {
  required_version = ">= 1.9.0"
  required_providers {
    google = {
      source  = "hashicorp/google"
      version = ">= 6.50.0, < 7.0.0"
    }
  }
}

provider "google" {
  project = "my-project"
  region  = "europe-west4"
}

module "modelfn" {
  source = "../.."

  project_id      = "my-project"
  region          = "europe-west4"
  name            = "iris"
  image           = "europe-west4-docker.pkg.dev/my-project/modelfn/modelfn:0.1.0"
  model_uri       = "gs://my-models/models/iris@prod"
  invoker_members = ["group:ml-engineers@example.com"]
  env             = { LOG_LEVEL = "info" }
  events = {
    input_prefix  = "inputs/"
    output_prefix = "outputs/"
  }
}

output "url" {
  value = module.modelfn.url
}
