resource "aws_security_group" "alb" {
  name        = "${var.name}-alb"
  description = "modelfn ${var.name}: HTTPS (and HTTP->HTTPS redirect) from clients"
  vpc_id      = var.vpc_id
  tags        = var.labels
}

resource "aws_vpc_security_group_ingress_rule" "alb_https" {
  for_each          = toset(var.allowed_cidrs)
  security_group_id = aws_security_group.alb.id
  description       = "HTTPS from clients"
  cidr_ipv4         = each.value
  ip_protocol       = "tcp"
  from_port         = 443
  to_port           = 443
}

resource "aws_vpc_security_group_ingress_rule" "alb_http" {
  #checkov:skip=CKV_AWS_260:port 80 only answers with a redirect to HTTPS
  for_each          = toset(var.allowed_cidrs)
  security_group_id = aws_security_group.alb.id
  description       = "HTTP, redirected to HTTPS"
  cidr_ipv4         = each.value
  ip_protocol       = "tcp"
  from_port         = 80
  to_port           = 80
}

resource "aws_vpc_security_group_egress_rule" "alb_to_tasks" {
  security_group_id            = aws_security_group.alb.id
  description                  = "To the tasks only"
  referenced_security_group_id = aws_security_group.tasks.id
  ip_protocol                  = "tcp"
  from_port                    = 8080
  to_port                      = 8080
}

resource "aws_security_group" "tasks" {
  name        = "${var.name}-tasks"
  description = "modelfn ${var.name}: tasks admit only the load balancer"
  vpc_id      = var.vpc_id
  tags        = var.labels
}

resource "aws_vpc_security_group_ingress_rule" "tasks_from_alb" {
  security_group_id            = aws_security_group.tasks.id
  description                  = "Container port from the load balancer only"
  referenced_security_group_id = aws_security_group.alb.id
  ip_protocol                  = "tcp"
  from_port                    = 8080
  to_port                      = 8080
}

resource "aws_vpc_security_group_egress_rule" "tasks_https" {
  security_group_id = aws_security_group.tasks.id
  description       = "HTTPS to S3, ECR, CloudWatch Logs and Secrets Manager"
  cidr_ipv4         = "0.0.0.0/0"
  ip_protocol       = "tcp"
  from_port         = 443
  to_port           = 443
}

resource "aws_lb" "this" {
  #checkov:skip=CKV_AWS_91:access logs need a bucket with an ELB-writable policy; left to the user's landing zone
  #checkov:skip=CKV2_AWS_28:WAF is an account-level choice; attach a web ACL to the ALB if required
  #checkov:skip=CKV_AWS_150:deletion protection is an input (deletion_protection), off by default so scratch stacks can be destroyed
  name                       = var.name
  internal                   = false
  load_balancer_type         = "application"
  security_groups            = [aws_security_group.alb.id]
  subnets                    = var.alb_subnet_ids
  drop_invalid_header_fields = true
  enable_deletion_protection = var.deletion_protection
  idle_timeout               = local.alb_idle_timeout
  tags                       = var.labels
}

resource "aws_lb_target_group" "this" {
  #checkov:skip=CKV_AWS_378:TLS ends at the ALB; ALB -> task traffic stays in the VPC, admitted only from the ALB's security group
  name                 = var.name
  port                 = 8080
  protocol             = "HTTP"
  target_type          = "ip"
  vpc_id               = var.vpc_id
  deregistration_delay = 30
  tags                 = var.labels

  # Ready only once the model is loaded: /readyz answers 503 until then.
  health_check {
    enabled             = true
    path                = "/readyz"
    matcher             = "200"
    interval            = 10
    timeout             = 5
    healthy_threshold   = 2
    unhealthy_threshold = 3
  }
}

resource "aws_lb_listener" "https" {
  load_balancer_arn = aws_lb.this.arn
  port              = 443
  protocol          = "HTTPS"
  ssl_policy        = "ELBSecurityPolicy-TLS13-1-2-2021-06"
  certificate_arn   = var.certificate_arn
  tags              = var.labels

  # Anything that is not this service's host and routes (scanners, bare IPs) gets a 404 from the ALB
  # itself: it never reaches a task, so it cannot wake the service from zero or keep it from idling.
  default_action {
    type = "fixed-response"
    fixed_response {
      content_type = "application/json"
      message_body = jsonencode({ error = "not found" })
      status_code  = "404"
    }
  }
}

locals {
  # The app's public routes (function/app.py); /metrics stays private to the VPC.
  forwarded_paths = ["/v1/*", "/v2", "/v2/*", "/events", "/healthz", "/readyz", "/openapi.json"]
  # An ALB rule evaluates at most five condition values: the host plus four paths per rule.
  path_groups = chunklist(local.forwarded_paths, 4)
}

resource "aws_lb_listener_rule" "service" {
  count        = length(local.path_groups)
  listener_arn = aws_lb_listener.https.arn
  priority     = 10 + count.index
  tags         = var.labels

  action {
    type             = "forward"
    target_group_arn = aws_lb_target_group.this.arn
  }

  condition {
    host_header {
      values = [var.domain_name]
    }
  }

  condition {
    path_pattern {
      values = local.path_groups[count.index]
    }
  }
}

resource "aws_lb_listener" "http_redirect" {
  #checkov:skip=CKV_AWS_2:this listener only redirects to HTTPS
  #checkov:skip=CKV_AWS_103:no TLS on a redirect-only HTTP listener
  load_balancer_arn = aws_lb.this.arn
  port              = 80
  protocol          = "HTTP"
  tags              = var.labels

  default_action {
    type = "redirect"
    redirect {
      protocol    = "HTTPS"
      port        = "443"
      status_code = "HTTP_301"
    }
  }
}
