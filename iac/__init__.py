"""Deploy driver: a validated deployment spec becomes terraform.tfvars.json for a root stack, then Terraform runs."""

from iac.spec import SPECS, AwsSpec, AzureSpec, DeploySpec, GcpSpec, load_spec

__all__ = ["SPECS", "AwsSpec", "AzureSpec", "DeploySpec", "GcpSpec", "load_spec"]
