"""Deployment specs: one pydantic model per cloud on a shared base, loaded from TOML."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from iac.errors import InvalidSpec
from loader.errors import InvalidURI
from loader.uri import parse_model_uri

CLOUDS = ("gcp", "aws", "azure")
ENV_NAME = r"^[A-Z][A-Z0-9_]*$"
# Bucket/container names as the three clouds allow them (3+ chars, lowercase); the rest of a model URI
# (prefix, name, version or alias) is checked by the service's own parser.
BUCKET = re.compile(r"^[a-z0-9][a-z0-9._-]+[a-z0-9]$")
# Names the Terraform modules set from the spec; env may not override them.
MANAGED_ENV = frozenset(
    {
        "MODEL_URI",
        "PORT",
        "EVENTS_INPUT_URI",
        "EVENTS_OUTPUT_URI",
        "EVENTS_SECRET",
        "AWS_REGION",
        "AZURE_STORAGE_ACCOUNT_URL",
        "AZURE_CLIENT_ID",
        "THREADS",
        "KEEPALIVE_SECONDS",
        "EVENTS_AUTH",
        "GOOGLE_CLOUD_PROJECT",
    }
)
# Cloud Run's CPU -> (min, max) memory in MiB (docs: "Configure memory limits").
CLOUD_RUN_MEMORY = {1: (512, 4096), 2: (512, 8192), 4: (2048, 16384), 6: (4096, 24576), 8: (4096, 32768)}


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Scaling(_Model):
    """Instances and per-instance concurrency; min 0 scales to zero."""

    min_instances: int = Field(0, ge=0)
    max_instances: int = Field(3, ge=1)
    concurrency: int = Field(8, ge=1, le=1000)

    @model_validator(mode="after")
    def _min_not_above_max(self) -> Scaling:
        if self.min_instances > self.max_instances:
            raise ValueError(f"min_instances ({self.min_instances}) must be <= max_instances ({self.max_instances})")
        return self


class Events(_Model):
    """Uploads under input_prefix of the model bucket trigger POST /events; results go to output_prefix."""

    input_prefix: str
    output_prefix: str

    @field_validator("input_prefix", "output_prefix")
    @classmethod
    def _relative_prefix(cls, value: str) -> str:
        if not re.match(r"^[^/].*/$", value):
            raise ValueError("must be a relative prefix ending in '/', e.g. 'inputs/'")
        return value

    @model_validator(mode="after")
    def _no_overlap(self) -> Events:
        a, b = self.input_prefix, self.output_prefix
        if a.startswith(b) or b.startswith(a):
            raise ValueError("input_prefix and output_prefix must not overlap (outputs would trigger new events)")
        return self


class DeploySpec(_Model):
    """What every cloud shares: image, model, sizes, scaling, events, env."""

    cloud: ClassVar[str]
    scheme: ClassVar[str]

    name: str = Field(pattern=r"^[a-z][a-z0-9-]{0,28}[a-z0-9]$")
    image: str = Field(min_length=1)
    model_uri: str
    cpu: float = 1
    memory_mib: int = 2048
    request_timeout_seconds: int = Field(300, ge=1)
    gpu: str | None = None
    scaling: Scaling = Scaling()
    events: Events | None = None
    env: dict[str, str] = {}
    secrets: dict[str, str] = {}
    labels: dict[str, str] = {}
    # First deployment: false creates only the storage (publish, then deploy with true).
    deploy_service: bool = True

    @field_validator("model_uri")
    @classmethod
    def _model_uri_scheme(cls, value: str) -> str:
        try:
            uri = parse_model_uri(value)
        except InvalidURI:
            uri = None
        if (
            uri is None
            or uri.store.scheme != cls.scheme
            or not BUCKET.match(uri.store.bucket)
            or "@" in uri.store.prefix
        ):
            raise ValueError(f"must look like {cls.scheme}://bucket/prefix/name@alias on {cls.cloud}")
        return value

    @field_validator("env", "secrets")
    @classmethod
    def _env_names(cls, value: dict[str, str]) -> dict[str, str]:
        bad = sorted(k for k in value if not re.match(ENV_NAME, k))
        if bad:
            raise ValueError(f"names must be upper-case identifiers: {', '.join(bad)}")
        managed = sorted(set(value) & MANAGED_ENV)
        if managed:
            raise ValueError(f"{', '.join(managed)} are set by the deployment itself")
        return value

    def stack_vars(self) -> dict[str, Any]:
        """Cloud-specific root-stack variables (overridden per cloud)."""
        return {}

    def to_tfvars(self) -> dict[str, Any]:
        """The root stack's terraform.tfvars.json content (None values left to the stack's defaults)."""
        data = self.model_dump(exclude={"scaling"}, exclude_none=True)
        data.update(self.scaling.model_dump())
        data.update(self.stack_vars())
        return {k: v for k, v in data.items() if v is not None}


class GcpSpec(DeploySpec):
    """Google Cloud Run."""

    cloud = "gcp"
    scheme = "gs"

    project_id: str = Field(pattern=r"^[a-z][a-z0-9-]{4,28}[a-z0-9]$")
    region: str = Field(min_length=1)
    create_bucket: bool = False
    bucket_location: str | None = None
    invoker_members: list[str] = []
    public: bool = False
    gpu: Literal["nvidia-l4"] | None = None
    gpu_zonal_redundancy: bool = False
    request_timeout_seconds: int = Field(300, ge=1, le=3600)

    @field_validator("cpu")
    @classmethod
    def _cpu(cls, value: float) -> float:
        if value not in (1, 2, 4, 6, 8):
            raise ValueError("Cloud Run cpu must be one of 1, 2, 4, 6, 8")
        return value

    @model_validator(mode="after")
    def _cloud_run_rules(self) -> GcpSpec:
        low, high = CLOUD_RUN_MEMORY[int(self.cpu)]
        if not low <= self.memory_mib <= high:
            raise ValueError(f"memory_mib for cpu {self.cpu:g} must be between {low} and {high} on Cloud Run")
        if self.gpu and (self.cpu < 4 or self.memory_mib < 16384):
            raise ValueError("Cloud Run GPUs (nvidia-l4) need cpu >= 4 and memory_mib >= 16384")
        if self.gpu and "gpu" not in self.image.lower():
            raise ValueError("with a GPU, image must be the gpu variant of the modelfn image (e.g. modelfn:0.1.0-gpu)")
        if len(self.name) > (23 if self.events else 26):
            raise ValueError("name is too long for Cloud Run's service account ids (26 characters, 23 with events)")
        if self.public and self.events:
            raise ValueError("public = true with events would let anyone POST /events: keep it private")
        return self


class AwsSpec(DeploySpec):
    """AWS ECS Fargate behind an HTTPS ALB."""

    cloud = "aws"
    scheme = "s3"

    region: str = Field(min_length=1)
    create_bucket: bool = False
    vpc_id: str = Field(pattern=r"^vpc-[0-9a-f]+$")
    alb_subnet_ids: list[str] = Field(min_length=2)
    task_subnet_ids: list[str] = Field(min_length=1)
    assign_public_ip: bool = False
    certificate_arn: str = Field(pattern=r"^arn:aws[a-z-]*:acm:")
    domain_name: str = Field(min_length=1)
    allowed_cidrs: list[str] = ["0.0.0.0/0"]
    idle_minutes_to_zero: int = Field(15, ge=1, le=1440)
    log_retention_days: int = 30
    events_secret_arn: str | None = Field(None, pattern=r"^arn:aws[a-z-]*:secretsmanager:")
    # None: only a bucket this stack creates has its notification configuration replaced.
    manage_bucket_notification: bool | None = None

    @field_validator("gpu")
    @classmethod
    def _no_gpu(cls, value: str | None) -> None:
        if value is not None:
            raise ValueError("ECS Fargate has no GPUs: remove gpu, or deploy GPU models to gcp or azure")
        return None

    @model_validator(mode="after")
    def _fargate_size_and_secret(self) -> AwsSpec:
        if self.cpu not in (0.25, 0.5, 1, 2, 4, 8, 16):
            raise ValueError("Fargate cpu must be one of 0.25, 0.5, 1, 2, 4, 8, 16")
        low, high = max(512, self.cpu * 2048), min(self.cpu * 8192, 122880)
        if self.memory_mib % 512 or not low <= self.memory_mib <= high:
            raise ValueError(f"memory_mib for cpu {self.cpu:g} must be a multiple of 512 between {low:g} and {high:g}")
        if self.events and not self.events_secret_arn:
            raise ValueError("events need events_secret_arn (EventBridge sends the shared secret header)")
        return self


class AzureSpec(DeploySpec):
    """Azure Container Apps."""

    cloud = "azure"
    scheme = "az"

    subscription_id: str = Field(pattern=r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
    location: str = Field(min_length=1)
    resource_group_name: str = Field(min_length=1)
    create_resource_group: bool = True
    storage_account_name: str = Field(pattern=r"^[a-z0-9]{3,24}$")
    storage_account_resource_group: str | None = None
    create_storage_account: bool = False
    storage_account_location: str | None = None
    acr_id: str | None = None
    gpu: Literal["nvidia-t4", "nvidia-a100"] | None = None
    request_timeout_seconds: int = Field(240, ge=1, le=240)
    # The shared events secret never goes into a file: the driver reads it from this variable.
    events_secret_env: str = Field("MODELFN_EVENTS_SECRET", pattern=ENV_NAME)

    @model_validator(mode="after")
    def _consumption_size(self) -> AzureSpec:
        if self.gpu is None and (self.cpu > 4 or self.memory_mib != self.cpu * 2048):
            raise ValueError("on the Consumption profile cpu must be <= 4 and memory_mib exactly cpu * 2048")
        return self

    def to_tfvars(self) -> dict[str, Any]:
        data = super().to_tfvars()
        data.pop("events_secret_env", None)
        return data


SPECS: dict[str, type[DeploySpec]] = {"gcp": GcpSpec, "aws": AwsSpec, "azure": AzureSpec}


def describe_errors(error: ValidationError) -> str:
    """One line per problem: field, value, why."""
    lines = []
    for item in error.errors():
        field = ".".join(str(p) for p in item["loc"]) or "(spec)"
        why = item["msg"].removeprefix("Value error, ")
        value = "" if item["type"] == "missing" or not item["loc"] else f" = {item['input']!r}"
        lines.append(f"{field}{value}: {why}")
    return "\n".join(lines)


def parse_spec(cloud: str, data: dict[str, Any]) -> DeploySpec:
    """Merge the shared top-level keys with the cloud's own table and validate."""
    if cloud not in SPECS:
        raise InvalidSpec(f"unknown cloud {cloud!r}: choose one of {', '.join(CLOUDS)}")
    merged = {k: v for k, v in data.items() if k not in CLOUDS}
    table = data.get(cloud)
    if table is None:
        raise InvalidSpec(f"the spec has no [{cloud}] table with the {cloud}-specific settings")
    if not isinstance(table, dict):
        raise InvalidSpec(f"[{cloud}] must be a table")
    merged.update(table)
    try:
        return SPECS[cloud].model_validate(merged)
    except ValidationError as exc:
        raise InvalidSpec(f"invalid {cloud} spec:\n{describe_errors(exc)}") from None


def load_spec(cloud: str, path: Path) -> DeploySpec:
    """Read a deploy.toml and validate it for one cloud."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise InvalidSpec(f"cannot read {path}: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise InvalidSpec(f"{path} is not valid TOML: {exc}") from None
    return parse_spec(cloud, data)
