# Minimal use of the module: a scale-to-zero Fargate service behind an HTTPS ALB, with S3 events.
terraform {
  required_version = ">= 1.9.0"
  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = ">= 6.47.0, < 7.0.0"
    }
  }
}

provider "aws" {
  region = "eu-west-1"
}

module "modelfn" {
  source = "../.."

  region            = "eu-west-1"
  name              = "iris"
  image             = "123456789012.dkr.ecr.eu-west-1.amazonaws.com/modelfn:0.1.0"
  model_uri         = "s3://my-models/models/iris@prod"
  vpc_id            = "vpc-0123456789abcdef0"
  alb_subnet_ids    = ["subnet-0aaaaaaaaaaaaaaaa", "subnet-0bbbbbbbbbbbbbbbb"]
  task_subnet_ids   = ["subnet-0cccccccccccccccc", "subnet-0dddddddddddddddd"]
  certificate_arn   = "arn:aws:acm:eu-west-1:123456789012:certificate/00000000-0000-0000-0000-000000000000"
  domain_name       = "iris.ml.example.com"
  env               = { LOG_LEVEL = "info" }
  events_secret_arn = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:modelfn/iris/events-AbCdEf"
  events = {
    input_prefix  = "inputs/"
    output_prefix = "outputs/"
  }
}

output "url" {
  value = module.modelfn.url
}
