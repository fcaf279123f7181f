"""Every storage operation the app performs on GCS and Azure Blob is granted by the plan's IAM.

No emulator enforces IAM on these clouds, so the operations are recorded while the real app runs the
IAM workload (tests/iam/flows.py) against gcp-storage-emulator and Azurite, and each one (get, put,
put-if-absent, overwrite, list, with its key) is looked up in the role bindings / role assignments of
the example plan. The operation list comes from the code's own store calls, never from a second list.
"""

from __future__ import annotations

import os
import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from function.app import create_app
from function.settings import Settings
from tests.conftest import CloudBackend
from tests.emulators import Emulator
from tests.events.cloud import event_for, upload
from tests.iam import flows
from tests.iam.recording import Op, paused, recording
from tests.models import linear_onnx, publish_model
from tests.terraform.plans import Plan, plan
from tests.terraform.tools import copy_terraform, require_terraform, terraform

# What each operation needs, per cloud (GCS needs delete to replace an object; Azure writes in place).
NEEDS = {
    "gs": {
        "get": {"storage.objects.get"},
        "put": {"storage.objects.create"},
        "put-if-absent": {"storage.objects.create"},
        "overwrite": {"storage.objects.create", "storage.objects.delete"},
        "list": {"storage.objects.list"},
    },
    "az": {
        "get": {"blobs/read"},
        "put": {"blobs/write"},
        "put-if-absent": {"blobs/write"},
        "overwrite": {"blobs/write"},
        "list": {"blobs/read"},
    },
}
# Permissions of the predefined roles (Cloud Storage IAM roles; Azure built-in roles' data actions).
ROLES = {
    "roles/storage.objectViewer": {"storage.objects.get", "storage.objects.list"},
    "roles/storage.objectCreator": {"storage.objects.create"},
    "roles/storage.objectUser": {
        "storage.objects.get",
        "storage.objects.list",
        "storage.objects.create",
        "storage.objects.delete",
        "storage.objects.update",
    },
    "roles/storage.objectAdmin": {
        "storage.objects.get",
        "storage.objects.list",
        "storage.objects.create",
        "storage.objects.delete",
        "storage.objects.update",
    },
    "Storage Blob Data Reader": {"blobs/read"},
    "Storage Blob Data Contributor": {
        "blobs/read",
        "blobs/write",
        "blobs/delete",
        "blobs/add/action",
        "blobs/move/action",
    },
}
BLOB_ACTION = re.compile(r"ActionMatches\{'Microsoft\.Storage/storageAccounts/blobServices/containers/(blobs/[^']+)'\}")


@dataclass(frozen=True)
class Grant:
    """One role binding / assignment of the service identity: permissions, limited to prefixes or not."""

    role: str
    permissions: frozenset[str]
    limited: frozenset[str]  # permissions the condition limits to the prefixes
    prefixes: tuple[str, ...]

    def allows(self, permission: str, key: str) -> bool:
        if permission not in self.permissions:
            return False
        return permission not in self.limited or any(key.startswith(p) for p in self.prefixes)


def gcp_grants(plan_: Plan) -> list[Grant]:
    """Bucket role bindings of the Cloud Run service account, with their IAM Conditions."""
    grants = []
    for binding in plan_.resources("google_storage_bucket_iam_member"):
        member = plan_.config(binding["address"])["expressions"]["member"].get("references", [])
        if "google_service_account.service" not in member:
            continue
        role = binding["values"]["role"]
        expression = " ".join(c["expression"] for c in binding["values"].get("condition", []))
        prefixes = tuple(re.findall(r'startsWith\("projects/_/buckets/[^/]+/objects/([^"]*)"\)', expression))
        limited = ROLES[role] if expression else frozenset()
        grants.append(Grant(role, frozenset(ROLES[role]), frozenset(limited), prefixes))
    return grants


def azure_grants(plan_: Plan) -> list[Grant]:
    """Role assignments of the app's identity on the container, with their ABAC conditions."""
    grants = []
    for assignment in plan_.resources("azurerm_role_assignment"):
        principal = plan_.config(assignment["address"])["expressions"]["principal_id"].get("references", [])
        if "azurerm_user_assigned_identity.this" not in principal:
            continue
        role = assignment["values"]["role_definition_name"]
        if role not in ROLES:
            continue  # AcrPull and other non-data roles
        condition = assignment["values"].get("condition") or ""
        prefixes = tuple(re.findall(r"StringStartsWith '([^']*)'", condition))
        limited = frozenset(BLOB_ACTION.findall(condition))
        grants.append(Grant(role, frozenset(ROLES[role]), limited, prefixes))
    return grants


class EmulatedBackend:
    """flows.Backend on gcp-storage-emulator or Azurite (no IAM: every caller is the admin)."""

    def __init__(self, cloud: CloudBackend) -> None:
        self._cloud = cloud
        self.scheme = cloud.scheme
        self.bucket = cloud.bucket

    def put(self, key: str, data: bytes) -> str:
        with paused():
            return upload(self._cloud, key, data)

    def read(self, key: str) -> bytes:
        with paused():
            return self._cloud.open("").read_bytes(key)

    def version(self, key: str) -> str:
        if self.scheme == "gs":
            from google.cloud import storage

            return str(storage.Client().bucket(self.bucket).get_blob(key).generation)
        from azure.storage.blob import BlobServiceClient

        service = BlobServiceClient.from_connection_string(os.environ["AZURE_STORAGE_CONNECTION_STRING"])
        return str(service.get_blob_client(self.bucket, key).get_blob_properties().etag)

    def event(self, key: str, version: str) -> tuple[dict[str, str], bytes]:
        return event_for(self._cloud, key, version)

    def publish(self, version: str, model_file: Path) -> None:
        with paused():
            uri = f"{self.scheme}://{self.bucket}/{flows.MODEL_STORE}"
            publish_model(uri, model_file, flows.NAME, version, ("prod",), Settings().store_options())


STACK = {"gs": "gcp", "az": "azure"}
# The examples' layout, with the model at models/iris like the workload.
MODEL_URI = {"gs": "gs://my-project-models/models/iris@prod", "az": "az://models/models/iris@prod"}


@pytest.fixture(scope="module")
def cloud_plans(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Plan]:
    """The GCP and Azure root stacks' example plans (events on)."""
    require_terraform()
    root = copy_terraform(tmp_path_factory.mktemp("grants"))
    planned = {}
    for scheme, stack in STACK.items():
        got = terraform(root / stack, ["get", "-no-color"])
        assert got.returncode == 0, got.output
        planned[scheme] = plan(root, stack, "grants", {"model_uri": MODEL_URI[scheme]})
        assert planned[scheme].result.returncode == 0, planned[scheme].result.output
    return planned


@pytest.fixture(params=["gs", "az"])
def emulated(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[EmulatedBackend]:
    scheme: str = request.param
    emulator: Emulator = request.getfixturevalue({"gs": "gcs_emulator", "az": "azure_emulator"}[scheme])
    for name, value in emulator.env.items():
        monkeypatch.setenv(name, value)
    yield EmulatedBackend(CloudBackend(scheme, emulator, emulator.create_bucket(f"t-{uuid.uuid4().hex[:16]}")))


def _table(ops: list[Op], scheme: str, grants: list[Grant]) -> list[tuple[str, str, str, str]]:
    """(operation, prefix, needed permission, granting role or MISSING), one row per distinct need."""
    rows = set()
    for op in ops:
        depth = 2 if op.key.startswith(flows.MODEL_STORE) else 1  # models/iris/, inputs/, outputs/
        prefix = "/".join(op.key.split("/")[:depth]) + "/"
        for permission in NEEDS[scheme][op.kind]:
            granted = [g.role for g in grants if g.allows(permission, op.key)]
            rows.add((op.kind, prefix, permission, granted[0] if granted else "MISSING"))
    return sorted(rows)


def test_every_storage_operation_has_a_grant(
    cloud_plans: dict[str, Plan], emulated: EmulatedBackend, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    model_file = linear_onnx(tmp_path / "lin.onnx")
    emulated.publish("1.0.0", model_file)
    with recording(monkeypatch, probe_overwrites=True) as recorder:
        flows.run(emulated, lambda: create_app(flows.settings(emulated, tmp_path / "cache")).test_client(), model_file)
    ops = [op for op in recorder.ops if op.bucket == emulated.bucket]
    kinds = {op.kind for op in ops}
    assert {"get", "put", "put-if-absent", "overwrite"} <= kinds, f"the workload did not exercise: {kinds}"

    scheme = emulated.scheme
    grants = gcp_grants(cloud_plans[scheme]) if scheme == "gs" else azure_grants(cloud_plans[scheme])
    assert grants, "no storage grants for the service identity in the plan"
    table = _table(ops, scheme, grants)
    missing = [row for row in table if row[3] == "MISSING"]
    rendered = "\n".join(f"{kind:14} {prefix:14} {perm:24} {role}" for kind, prefix, perm, role in table)
    assert not missing, f"operations without a grant:\n{rendered}"
