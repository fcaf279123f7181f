"""Service configuration: read once from the environment, then passed down explicitly."""

from __future__ import annotations

import re
from enum import StrEnum
from pathlib import Path

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from loader.errors import InvalidURI
from loader.uri import StoreLocation, parse_model_uri, parse_store_uri

DEMO_STORE = Path(__file__).parent / "demo" / "store"
DEMO_MODEL_URI = f"{DEMO_STORE.as_uri()}/iris@latest"


class Device(StrEnum):
    AUTO = "auto"
    CPU = "cpu"
    CUDA = "cuda"


class EventsAuth(StrEnum):
    SECRET = "secret"  # noqa: S105 (a mode name): every POST /events must carry EVENTS_SECRET
    PLATFORM = "platform"  # the platform authenticates callers (private Cloud Run + IAM invoker)


LOG_LEVELS = ("debug", "info", "warning", "error", "critical")
# Project ids (6-30 chars) and legacy domain-scoped ids (example.com:project); the emulator uses "test".
_PROJECT_ID = re.compile(r"^[a-z0-9][a-z0-9.:-]{0,99}$")


class EventLoop(StrEnum):
    UVLOOP = "uvloop"  # libuv, transports in C: less of the loop's CPU per request
    ASYNCIO = "asyncio"  # the standard library's selector loop


class LoadMode(StrEnum):
    EAGER = "eager"  # start loading in the background when the worker boots
    LAZY = "lazy"  # start loading on the first request


class Settings(BaseSettings):
    """Every knob of the function; env var names are the upper-cased field names."""

    model_config = SettingsConfigDict(env_prefix="", case_sensitive=False, extra="ignore", env_ignore_empty=True)

    model_uri: str = Field(DEMO_MODEL_URI, description="Artifact URI: scheme://bucket/prefix/name@version|alias")
    device: Device = Field(Device.AUTO, description="auto | cpu | cuda; cuda fails loudly when unavailable")
    cache_dir: Path = Field(Path("/tmp/modelfn-cache"), description="Local artifact cache (keyed by digest)")  # noqa: S108
    cache_keep_artifacts: int = Field(
        2, ge=0, description="Artifacts the cache keeps after each load, most recently used first; 0 keeps all"
    )
    warmup_batches: int | None = Field(
        None, ge=0, description="Dummy batches run at load before READY; default 1 on CPU, 2 on CUDA; 0: none"
    )
    warmup_dynamic_size: int = Field(1, gt=0, description="Size of dynamic (-1) dimensions in warm-up batches")
    load_mode: LoadMode = Field(LoadMode.EAGER, description="eager: load at worker boot; lazy: on first request")
    load_wait_seconds: float = Field(10.0, ge=0, description="How long a request waits for a loading model")
    load_retry_seconds: float = Field(30.0, gt=0, description="Delay before retrying a failed load")
    fetch_retries: int = Field(4, ge=0, description="Retries of transient storage errors per file")
    fetch_retry_budget_seconds: float = Field(
        30.0, gt=0, description="Most seconds one storage read spends retrying (plus one request's timeout)"
    )
    max_body_bytes: int = Field(10 * 1024 * 1024, gt=0, description="Largest accepted request body")
    body_drain_bytes: int = Field(
        128 * 1024 * 1024, ge=0, description="Bytes of an oversized body read and dropped so the client reads the 413"
    )
    max_inflight_body_bytes: int | None = Field(
        None, gt=0, description="Large-body bytes decoded at once per process (others wait); unset: MAX_BODY_BYTES"
    )

    port: int = Field(8080, gt=0, lt=65536, description="Port Gunicorn binds on 0.0.0.0")
    workers: int = Field(1, gt=0, description="Gunicorn workers: must be 1 (one model copy per container)")
    threads: int = Field(64, gt=0, description="HTTP threads of the one worker: platform concurrency + 4")
    keepalive_seconds: int = Field(
        75, ge=0, description="Idle keep-alive; above the clouds' 60 s load-balancer idle timeout, so they close first"
    )
    request_read_timeout: float = Field(
        10.0, gt=0, description="Seconds a client may stall while sending headers or body before it is dropped"
    )
    event_loop: EventLoop = Field(
        EventLoop.UVLOOP, description="The worker's event loop: uvloop (C, faster) or asyncio (the standard library's)"
    )
    forwarded_allow_ips: str = Field(
        "127.0.0.1,::1", description="Proxies trusted for X-Forwarded-*; '*' only behind a load balancer you own"
    )
    runtime_threads: int | None = Field(
        None, gt=0, description="Runtime intra-op threads (ORT, torch); default: CPUs of the cgroup quota"
    )
    huge_pages: bool = Field(
        True, description="Back a CPU model's loaded weights with transparent huge pages (Linux); false: 4 KB pages"
    )
    max_batch_size: int = Field(64, gt=0, description="Most rows one batched predict() may take; 1 turns batching off")
    max_batch_delay_ms: float = Field(
        0.0, ge=0, le=1000, description="Under load, how long a batch may wait to fill up; a lone request never waits"
    )
    max_batch_linger_ms: float = Field(
        10.0,
        ge=0,
        le=1000,
        description="Right after a batch of N rows, the next waits for N rows while each comes within this (and the"
        " last predict's time) of the one before, 4 such gaps at most",
    )
    timeout: int = Field(120, gt=0, description="Gunicorn worker timeout (seconds)")
    graceful_timeout: int = Field(25, gt=0, description="Seconds in-flight requests get after SIGTERM")
    log_level: str = Field("info", description="debug | info | warning | error | critical")
    google_cloud_project: str | None = Field(
        None, description="Project id for Cloud Logging trace correlation (logging.googleapis.com/trace)"
    )
    prometheus_multiproc_dir: Path | None = Field(
        None, description="prometheus_client's multiprocess dir; set by the Gunicorn config"
    )

    events_input_uri: str | None = Field(
        None, description="Store URI + prefix whose uploads POST /events turns into batch jobs (s3://b/inputs)"
    )
    events_output_uri: str | None = Field(
        None, description="Store URI + prefix for outputs and error reports; must not lie inside the input prefix"
    )
    events_secret: str | None = Field(
        None, min_length=16, description="Shared secret POST /events requires in X-Modelfn-Event-Secret (>= 16 chars)"
    )
    events_auth: EventsAuth = Field(
        EventsAuth.SECRET,
        description="secret: /events needs EVENTS_SECRET; platform: the platform authenticates callers (IAM)",
    )
    events_batch_size: int = Field(256, gt=0, le=65536, description="Instances per predict() call in batch jobs")
    model_poll_seconds: float = Field(0.0, ge=0, description="Poll the model alias this often (0: never)")
    batch_output_format: str = Field(
        "jsonl", pattern="^(jsonl|parquet)$", description="Batch job part files: jsonl | parquet"
    )
    batch_progress_seconds: float = Field(5.0, gt=0, description="How often a batch shard records its progress")
    batch_launcher: str = Field(
        "none",
        pattern="^(none|cloud-run|ecs|container-apps)$",
        description="Job engine for inputs over BATCH_INLINE_MAX_BYTES: none | cloud-run | ecs | container-apps",
    )
    batch_inline_max_bytes: int = Field(
        256 * 1024 * 1024, gt=0, description="Larger event inputs start a batch job instead of running inline"
    )
    batch_task_target_bytes: int = Field(256 * 1024 * 1024, gt=0, description="Input bytes per batch job task")
    batch_max_tasks: int = Field(100, gt=0, le=10000, description="Most tasks one batch job execution gets")
    batch_job_name: str | None = Field(
        None,
        description="Job to start: Cloud Run projects/P/locations/R/jobs/J, ECS task definition, Container Apps job",
    )
    batch_ecs_cluster: str | None = Field(None, description="ECS cluster that runs batch tasks")
    batch_ecs_subnets: str | None = Field(None, description="Comma-separated subnets for batch tasks (awsvpc)")
    batch_ecs_security_groups: str | None = Field(None, description="Comma-separated security groups for batch tasks")
    batch_ecs_public_ip: bool = Field(False, description="Give batch tasks public IPs (public subnets without NAT)")
    batch_container_name: str = Field("modelfn", description="Container in the job/task definition to override")
    batch_api_endpoint: str | None = Field(
        None, description="Job API endpoint override (a private endpoint or a local stand-in; GCP calls go anonymous)"
    )
    batch_azure_subscription_id: str | None = Field(None, description="Subscription of the Container Apps job")
    batch_azure_resource_group: str | None = Field(None, description="Resource group of the Container Apps job")
    cloud_run_task_index: int | None = Field(None, ge=0, description="Set by Cloud Run Jobs: this task's shard")
    cloud_run_task_count: int | None = Field(None, gt=0, description="Set by Cloud Run Jobs: the number of shards")

    protected_aliases: str = Field(
        "", description="Comma-separated aliases publish/promote point only at versions whose gates passed"
    )
    monitor_sample_every: int = Field(
        10, ge=0, description="Model health metrics observe every Nth predict() call (1: all, 0: off)"
    )
    monitor_window: int = Field(1000, ge=10, le=100_000, description="Rows per model version kept for drift (PSI)")
    monitor_max_rows: int = Field(32, ge=1, description="Rows of one sampled batch added to the drift window")

    azure_storage_account_url: str | None = Field(None, description="https://<account>.blob.core.windows.net")
    azure_storage_connection_string: str | None = Field(None, description="Connection string (Azurite)")

    @field_validator("model_uri")
    @classmethod
    def _model_uri(cls, value: str) -> str:
        try:
            parse_model_uri(value.strip())  # fail at startup, not in every worker's first load
        except InvalidURI as exc:
            raise ValueError(str(exc)) from None
        return value.strip()

    @field_validator("log_level")
    @classmethod
    def _log_level(cls, value: str) -> str:
        level = value.strip().lower()
        if level not in LOG_LEVELS:
            raise ValueError(f"LOG_LEVEL must be one of {', '.join(LOG_LEVELS)}")  # never echo the value
        return level

    @field_validator("google_cloud_project")
    @classmethod
    def _project(cls, value: str | None) -> str | None:
        if value is not None and not _PROJECT_ID.match(value.strip()):
            raise ValueError("GOOGLE_CLOUD_PROJECT must be a project id (lower-case letters, digits, '-')")
        return value.strip() if value else None

    @field_validator("workers")
    @classmethod
    def _one_worker(cls, value: int) -> int:
        if value != 1:
            raise ValueError(
                "must be 1: every Gunicorn worker would load its own model copy; raise THREADS for concurrency"
                " (docs/serving.md)"
            )
        return value

    @field_validator("events_input_uri", "events_output_uri")
    @classmethod
    def _store_uri(cls, value: str | None) -> str | None:
        if value is None:
            return None
        try:
            parse_store_uri(value.strip())
        except InvalidURI as exc:
            raise ValueError(str(exc)) from None
        return value.strip()

    @model_validator(mode="after")
    def _events_pair(self) -> Settings:
        inp, out = self.events_input_uri, self.events_output_uri
        if (inp is None) != (out is None):
            raise ValueError("set both EVENTS_INPUT_URI and EVENTS_OUTPUT_URI, or neither")
        if inp and out:
            inp_loc, out_loc = parse_store_uri(inp), parse_store_uri(out)
            if _inside(out_loc, inp_loc) or _inside(inp_loc, out_loc):
                raise ValueError(
                    "EVENTS_OUTPUT_URI and EVENTS_INPUT_URI must not overlap (outputs would trigger jobs, "
                    "or inputs would be taken for outputs)"
                )
        if inp and self.events_auth is EventsAuth.SECRET and not self.events_secret:
            raise ValueError(
                "events are enabled but unauthenticated: set EVENTS_SECRET, or EVENTS_AUTH=platform when "
                "the platform authenticates callers (private Cloud Run with IAM)"
            )
        return self

    def store_options(self) -> dict[str, str | None]:
        """Options the storage backends need that the SDKs do not read themselves."""
        return {
            "azure_account_url": self.azure_storage_account_url,
            "azure_connection_string": self.azure_storage_connection_string,
        }


def load_settings() -> Settings:
    """Read settings from the process environment (the only place that does)."""
    return Settings()


def _inside(inner: StoreLocation, outer: StoreLocation) -> bool:
    """True when ``inner`` is ``outer`` or under it (same store)."""
    if (inner.scheme, inner.bucket) != (outer.scheme, outer.bucket):
        return False
    return not outer.prefix.strip("/") or f"{inner.prefix}/".startswith(f"{outer.prefix.rstrip('/')}/")
