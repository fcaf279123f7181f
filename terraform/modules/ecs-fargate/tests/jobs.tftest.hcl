# Batch jobs: off by default; one variable adds the task definition, its role and the service's RunTask rights.
mock_provider "aws" {
  mock_resource "aws_lb" {
    defaults = {
      arn_suffix = "app/iris/0123456789abcdef"
      dns_name   = "iris-123.eu-west-1.elb.amazonaws.com"
    }
  }
  mock_resource "aws_lb_target_group" {
    defaults = {
      arn_suffix = "targetgroup/iris/0123456789abcdef"
    }
  }
  mock_resource "aws_ecs_task_definition" {
    defaults = {
      arn                  = "arn:aws:ecs:eu-west-1:123456789012:task-definition/iris-batch:1"
      arn_without_revision = "arn:aws:ecs:eu-west-1:123456789012:task-definition/iris-batch"
    }
  }
  mock_resource "aws_ecs_cluster" {
    defaults = {
      arn = "arn:aws:ecs:eu-west-1:123456789012:cluster/iris"
    }
  }
  mock_resource "aws_iam_role" {
    defaults = {
      arn = "arn:aws:iam::123456789012:role/iris-batch"
    }
  }
}

variables {
  region          = "eu-west-1"
  name            = "iris"
  image           = "123456789012.dkr.ecr.eu-west-1.amazonaws.com/modelfn:0.1.0"
  model_uri       = "s3://models-bucket/team/iris@prod"
  vpc_id          = "vpc-1"
  alb_subnet_ids  = ["subnet-a", "subnet-b"]
  task_subnet_ids = ["subnet-c", "subnet-d"]
  certificate_arn = "arn:aws:acm:eu-west-1:123456789012:certificate/abc"
  domain_name     = "iris.example.com"
  events = {
    input_prefix  = "inputs/"
    output_prefix = "outputs/"
  }
  events_secret_arn = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:events-AbCdEf"
}

run "off_by_default" {
  command = plan

  assert {
    condition     = length(aws_ecs_task_definition.batch) == 0 && length(aws_iam_role_policy.task_runs_batch) == 0
    error_message = "no batch task definition or RunTask rights unless batch_jobs is set"
  }
}

run "one_variable_turns_it_on" {
  command = apply

  variables {
    batch_jobs = { max_tasks = 40 }
  }

  assert {
    condition     = [for c in jsondecode(aws_ecs_task_definition.batch[0].container_definitions) : c if c.name == "modelfn"][0].entryPoint == ["python", "-m", "function.cli", "batch", "run"]
    error_message = "batch tasks run modelfn batch run (the launch adds only arguments)"
  }
  assert {
    condition     = [for c in jsondecode(aws_ecs_task_definition.batch[0].container_definitions) : c if c.name == "modelfn"][0].name == "modelfn" && [for c in jsondecode(aws_ecs_task_definition.batch[0].container_definitions) : c if c.name == "modelfn"][0].image == var.image
    error_message = "the container the launcher overrides is modelfn, with the service's image"
  }
  assert {
    condition     = aws_ecs_task_definition.batch[0].task_role_arn == aws_iam_role.batch[0].arn
    error_message = "batch tasks run as their own role"
  }
  assert {
    condition     = [for c in jsondecode(aws_ecs_task_definition.batch[0].container_definitions) : c.name] == ["tmp-permissions", "modelfn"]
    error_message = "batch tasks need the /tmp init container too (read-only root, root-owned Fargate volume)"
  }
  assert {
    condition = {
      for e in [for c in jsondecode(aws_ecs_task_definition.this.container_definitions) : c if c.name == "modelfn"][0].environment : e.name => e.value if startswith(e.name, "BATCH_")
      } == {
      BATCH_LAUNCHER            = "ecs"
      BATCH_JOB_NAME            = "iris-batch"
      BATCH_ECS_CLUSTER         = "iris"
      BATCH_ECS_SUBNETS         = "subnet-c,subnet-d"
      BATCH_ECS_SECURITY_GROUPS = aws_security_group.batch[0].id
      BATCH_ECS_PUBLIC_IP       = "false"
      BATCH_CONTAINER_NAME      = "modelfn"
      BATCH_INLINE_MAX_BYTES    = "268435456"
      BATCH_TASK_TARGET_BYTES   = "268435456"
      BATCH_MAX_TASKS           = "40"
    }
    error_message = "the service gets exactly the settings it needs to launch batch tasks"
  }
  assert {
    condition     = [for s in jsondecode(aws_iam_role_policy.task_runs_batch[0].policy).Statement : s.Action[0]] == ["ecs:RunTask", "iam:PassRole"]
    error_message = "the service may run the batch task definition and pass its roles"
  }
  assert {
    condition     = jsondecode(aws_iam_role_policy.task_runs_batch[0].policy).Statement[0].Resource == ["arn:aws:ecs:eu-west-1:123456789012:task-definition/iris-batch:*"] && jsondecode(aws_iam_role_policy.task_runs_batch[0].policy).Statement[0].Condition.ArnEquals["ecs:cluster"] == "arn:aws:ecs:eu-west-1:123456789012:cluster/iris"
    error_message = "RunTask is limited to the batch task definition on the service's cluster"
  }
  assert {
    condition     = jsondecode(aws_iam_role_policy.task_runs_batch[0].policy).Statement[1].Condition.StringEquals["iam:PassedToService"] == "ecs-tasks.amazonaws.com"
    error_message = "PassRole only to ECS tasks"
  }
  assert {
    condition     = jsondecode(aws_iam_role_policy.batch[0].policy).Statement[2].Action == ["s3:GetObject", "s3:PutObject"] && jsondecode(aws_iam_role_policy.batch[0].policy).Statement[2].Resource == ["arn:aws:s3:::models-bucket/outputs/*"]
    error_message = "batch tasks write only under the output prefix"
  }
  assert {
    condition     = jsondecode(aws_iam_role_policy.batch[0].policy).Statement[0].Resource == ["arn:aws:s3:::models-bucket/team/iris/*", "arn:aws:s3:::models-bucket/inputs/*"]
    error_message = "batch tasks read only the model and the inputs"
  }
}

run "needs_events" {
  command = plan

  variables {
    events     = null
    batch_jobs = {}
  }

  expect_failures = [var.batch_jobs]
}
