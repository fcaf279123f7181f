# Scale to zero on Fargate. Application Auto Scaling cannot wake a service from zero by itself
# (a target-tracking metric per target does not exist without targets), so there are three parts:
#  1. target tracking on ALBRequestCountPerTarget between 1 and max_instances;
#  2. scale from zero: while no task runs the ALB answers 503 itself (HTTPCode_ELB_503_Count); an alarm on
#     "503s and RunningTaskCount == 0" sets the desired count to 1;
#  3. scale to zero: an alarm on "tasks running, no requests and no 503s for idle_minutes_to_zero minutes"
#     sets it to 0.
# The two alarms are exclusive by construction (one needs no running task, the other a running one), so
# the 0 -> 1 and N -> 0 paths cannot fight, and neither can set a running service to 1.
# Clients see 503s from the ALB for the cold path (alarm period + task start + model load, ~2-4 min).

locals {
  service_resource_id = "service/${aws_ecs_cluster.this.name}/${aws_ecs_service.this.name}"
  lb_dimension        = { LoadBalancer = aws_lb.this.arn_suffix }
  service_dimension   = { ClusterName = aws_ecs_cluster.this.name, ServiceName = aws_ecs_service.this.name }
}

resource "aws_appautoscaling_target" "this" {
  service_namespace  = "ecs"
  scalable_dimension = "ecs:service:DesiredCount"
  resource_id        = local.service_resource_id
  min_capacity       = var.min_instances
  max_capacity       = var.max_instances
  tags               = var.labels
}

resource "aws_appautoscaling_policy" "requests" {
  name               = "${var.name}-requests-per-task"
  policy_type        = "TargetTrackingScaling"
  service_namespace  = aws_appautoscaling_target.this.service_namespace
  scalable_dimension = aws_appautoscaling_target.this.scalable_dimension
  resource_id        = aws_appautoscaling_target.this.resource_id

  target_tracking_scaling_policy_configuration {
    target_value       = var.target_requests_per_task_per_minute
    scale_out_cooldown = 60
    scale_in_cooldown  = 300

    # ALBRequestCountPerTarget, spelled out so the target group is passed as a whole value.
    customized_metric_specification {
      namespace   = "AWS/ApplicationELB"
      metric_name = "RequestCountPerTarget"
      statistic   = "Sum"

      dimensions {
        name  = "TargetGroup"
        value = aws_lb_target_group.this.arn_suffix
      }
    }
  }
}

resource "aws_appautoscaling_policy" "from_zero" {
  name               = "${var.name}-from-zero"
  policy_type        = "StepScaling"
  service_namespace  = aws_appautoscaling_target.this.service_namespace
  scalable_dimension = aws_appautoscaling_target.this.scalable_dimension
  resource_id        = aws_appautoscaling_target.this.resource_id

  step_scaling_policy_configuration {
    adjustment_type         = "ExactCapacity"
    cooldown                = 120
    metric_aggregation_type = "Maximum"

    step_adjustment {
      metric_interval_lower_bound = 0
      scaling_adjustment          = max(1, var.min_instances)
    }
  }
}

# Fires only while the service runs no task at all, so it can never scale a running service in.
resource "aws_cloudwatch_metric_alarm" "from_zero" {
  alarm_name          = "${var.name}-scale-from-zero"
  alarm_description   = "No task is running and the ALB answered 503 itself: start one task."
  evaluation_periods  = 1
  comparison_operator = "GreaterThanOrEqualToThreshold"
  threshold           = 1
  treat_missing_data  = "notBreaching"
  alarm_actions       = [aws_appautoscaling_policy.from_zero.arn]
  tags                = var.labels

  metric_query {
    id          = "wake"
    expression  = "IF(FILL(running, 0) == 0 AND FILL(elb503, 0) > 0, 1, 0)"
    label       = "ALB 503s while no task runs"
    return_data = true
  }

  metric_query {
    id = "elb503"
    metric {
      namespace   = "AWS/ApplicationELB"
      metric_name = "HTTPCode_ELB_503_Count"
      dimensions  = local.lb_dimension
      stat        = "Sum"
      period      = 60
    }
  }

  metric_query {
    id = "running"
    metric {
      namespace   = "ECS/ContainerInsights"
      metric_name = "RunningTaskCount"
      dimensions  = local.service_dimension
      stat        = "Maximum"
      period      = 60
    }
  }
}

resource "aws_appautoscaling_policy" "to_zero" {
  count              = var.min_instances == 0 ? 1 : 0
  name               = "${var.name}-to-zero"
  policy_type        = "StepScaling"
  service_namespace  = aws_appautoscaling_target.this.service_namespace
  scalable_dimension = aws_appautoscaling_target.this.scalable_dimension
  resource_id        = aws_appautoscaling_target.this.resource_id

  step_scaling_policy_configuration {
    adjustment_type         = "ExactCapacity"
    cooldown                = 60
    metric_aggregation_type = "Maximum"

    step_adjustment {
      metric_interval_lower_bound = 0
      scaling_adjustment          = 0
    }
  }
}

# RequestCount counts only requests a target answered, so 503s from the ALB are added in: a service that
# is failing to start must not be scaled back to zero while clients wait. It fires only while a task runs:
# at zero the alarm is OK (missing data is not breaching), so CloudWatch never keeps re-sending "set 0"
# while the from-zero alarm starts the first task.
resource "aws_cloudwatch_metric_alarm" "to_zero" {
  count               = var.min_instances == 0 ? 1 : 0
  alarm_name          = "${var.name}-scale-to-zero"
  alarm_description   = "Tasks running and no requests for ${var.idle_minutes_to_zero} minutes: stop all tasks."
  evaluation_periods  = var.idle_minutes_to_zero
  comparison_operator = "GreaterThanOrEqualToThreshold"
  threshold           = 1
  treat_missing_data  = "notBreaching"
  alarm_actions       = [aws_appautoscaling_policy.to_zero[0].arn]
  tags                = var.labels

  metric_query {
    id          = "idle"
    expression  = "IF(FILL(running, 0) > 0 AND FILL(requests, 0) + FILL(elb503, 0) == 0, 1, 0)"
    label       = "Running with neither requests nor ALB 503s"
    return_data = true
  }

  metric_query {
    id = "running"
    metric {
      namespace   = "ECS/ContainerInsights"
      metric_name = "RunningTaskCount"
      dimensions  = local.service_dimension
      stat        = "Maximum"
      period      = 60
    }
  }

  metric_query {
    id = "requests"
    metric {
      namespace   = "AWS/ApplicationELB"
      metric_name = "RequestCount"
      dimensions  = local.lb_dimension
      stat        = "Sum"
      period      = 60
    }
  }

  metric_query {
    id = "elb503"
    metric {
      namespace   = "AWS/ApplicationELB"
      metric_name = "HTTPCode_ELB_503_Count"
      dimensions  = local.lb_dimension
      stat        = "Sum"
      period      = 60
    }
  }
}
