"""The AWS example plan's IAM policies, enforced by moto, while the real app and CLI do their storage work.

moto checks every S3 request against the caller's IAM policies once auth is switched on (the same switch
as INITIAL_NO_AUTH_ACTION_COUNT, via /moto-api/reset-auth after setup). One S3 rule moto does not
emulate is checked on the recorded calls instead: a GET of a missing key answers 404 only to a caller
allowed s3:ListBucket on the bucket (otherwise 403), and a GetObject request carries no s3:prefix.
"""

from __future__ import annotations

import json
import re
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest
from click.testing import CliRunner

from function.app import create_app
from function.cli import main
from tests.emulators import EmulatorMissing, MotoEmulator
from tests.events import payloads
from tests.iam import flows
from tests.iam.recording import Recorder, paused, recording
from tests.models import linear_onnx, publish_model
from tests.terraform.plans import Plan, plan
from tests.terraform.tools import copy_terraform, require_terraform, terraform

REGION = "us-east-1"
# moto_server, except that S3 signatures are not re-checked for query strings holding '/': moto
# canonicalises them differently from botocore (ListObjectsV2 with Prefix="models/" fails with
# SignatureDoesNotMatch even for an admin). The access key still identifies the user, and the user's
# policies still decide every request, which is what these tests are about.
MOTO = """
import sys
from moto.iam import access_control
from moto.server import main
checked = access_control.S3IAMRequest.check_signature
def check_signature(self):
    query = self._path.partition("?")[2]
    if "/" in query or "%2f" in query.lower():
        return
    checked(self)
access_control.S3IAMRequest.check_signature = check_signature
main(sys.argv[1:])
"""


class IamMoto(MotoEmulator):
    """A private moto server for one test module (auth is switched on for the whole server)."""

    def command(self) -> list[str]:
        moto_server = super().command()[0]
        python = str(Path(moto_server).with_name("python"))
        return [python, "-c", MOTO, "-H", "127.0.0.1", "-p", str(self.port)]


ADMIN_POLICY = json.dumps({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]})


@pytest.fixture(scope="module")
def aws_plan(tmp_path_factory: pytest.TempPathFactory) -> Plan:
    """`terraform show -json` of the AWS root stack's example (events on)."""
    require_terraform()
    root = copy_terraform(tmp_path_factory.mktemp("iam-plan"))
    got = terraform(root / "aws", ["get", "-no-color"])
    assert got.returncode == 0, got.output
    planned = plan(root, "aws", "iam")
    assert planned.result.returncode == 0, planned.result.output
    return planned


def task_policy(aws_plan: Plan) -> str:
    """The task role's S3 policy document, exactly as the plan would create it."""
    return str(aws_plan.one("aws_iam_role_policy", "task")["values"]["policy"])


def publisher_policy(aws_plan: Plan) -> str:
    """The documented publisher policy (root output publisher_policy_json)."""
    outputs = aws_plan.data["planned_values"]["outputs"]
    assert "publisher_policy_json" in outputs, "the stack documents no publisher policy"
    return str(outputs["publisher_policy_json"]["value"])


@dataclass(frozen=True)
class Keys:
    """One IAM user's access key on the emulator."""

    endpoint: str
    access_key: str
    secret_key: str

    @property
    def env(self) -> dict[str, str]:
        return {
            "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_ACCESS_KEY_ID": self.access_key,
            "AWS_SECRET_ACCESS_KEY": self.secret_key,
            "AWS_DEFAULT_REGION": REGION,
        }

    def client(self, service: str) -> Any:
        return boto3.client(
            service,
            endpoint_url=self.endpoint,
            aws_access_key_id=self.access_key,
            aws_secret_access_key=self.secret_key,
            region_name=REGION,
        )


@dataclass(frozen=True)
class Account:
    """The emulated account: bucket from the plan and the users holding the plan's policies."""

    bucket: str
    admin: Keys
    task: Keys
    publisher: Keys


@pytest.fixture(scope="module")
def account(aws_plan: Plan) -> Iterator[Account]:
    """A private moto server: bucket and users created, then IAM enforced for every later request."""
    emulator = IamMoto()
    try:
        emulator.start()
    except EmulatorMissing as exc:
        pytest.fail(str(exc), pytrace=False)
    try:
        root = Keys(emulator.endpoint, "testing", "testing")
        bucket = re.match(r"s3://([^/]+)/", aws_plan.data["variables"]["model_uri"]["value"]).group(1)  # type: ignore[union-attr]
        root.client("s3").create_bucket(Bucket=bucket)
        iam = root.client("iam")
        users = {}
        for name, policy in (("admin", ADMIN_POLICY), ("task", task_policy(aws_plan)), ("publisher", None)):
            iam.create_user(UserName=name)
            document = policy if policy is not None else _publisher_or_none(aws_plan)
            if document is not None:
                iam.put_user_policy(UserName=name, PolicyName="modelfn", PolicyDocument=document)
            key = iam.create_access_key(UserName=name)["AccessKey"]
            users[name] = Keys(emulator.endpoint, key["AccessKeyId"], key["SecretAccessKey"])
        urllib.request.urlopen(  # from now on every request is authenticated and authorised
            urllib.request.Request(
                f"{emulator.endpoint}/moto-api/reset-auth", data=b"0", headers={"Content-Type": "text/plain"}
            ),
            timeout=10,
        ).close()
        yield Account(bucket, users["admin"], users["task"], users["publisher"])
    finally:
        emulator.close()


def _publisher_or_none(aws_plan: Plan) -> str | None:
    outputs = aws_plan.data["planned_values"]["outputs"]
    return str(outputs["publisher_policy_json"]["value"]) if "publisher_policy_json" in outputs else None


class S3Backend:
    """flows.Backend on the IAM-enforcing moto: the admin writes; events are EventBridge's."""

    scheme = "s3"

    def __init__(self, account: Account) -> None:
        self.bucket = account.bucket
        self._admin = account.admin
        self._s3 = account.admin.client("s3")
        self._etags: dict[str, str] = {}  # sequencer -> the ETag that write produced, as the event carries both

    def put(self, key: str, data: bytes) -> str:
        etag = self._s3.put_object(Bucket=self.bucket, Key=key, Body=data)["ETag"].strip('"')
        sequencer = self.version(key)
        self._etags[sequencer] = etag
        return sequencer

    def read(self, key: str) -> bytes:
        return bytes(self._s3.get_object(Bucket=self.bucket, Key=key)["Body"].read())

    def version(self, key: str) -> str:
        return uuid.uuid4().hex[:16].upper()  # the per-write sequencer of an unversioned bucket

    def event(self, key: str, version: str) -> tuple[dict[str, str], bytes]:
        return payloads.s3(self.bucket, key, version, etag=self._etags.get(version))

    def publish(self, version: str, model_file: Path) -> None:
        with paused(), pytest.MonkeyPatch.context() as patch:  # nothing else runs while the admin publishes
            for name, value in self._admin.env.items():
                patch.setenv(name, value)
            publish_model(f"s3://{self.bucket}/{flows.MODEL_STORE}", model_file, flows.NAME, version, ("prod",))


def _allows_list_bucket_for_get(policy: str, bucket: str) -> bool:
    """True when some statement allows s3:ListBucket on the bucket with no condition (GetObject has no s3:prefix)."""
    statements = json.loads(policy)["Statement"]
    for statement in statements if isinstance(statements, list) else [statements]:
        actions = statement.get("Action", [])
        resources = statement.get("Resource", [])
        actions = [actions] if isinstance(actions, str) else actions
        resources = [resources] if isinstance(resources, str) else resources
        if (
            statement.get("Effect") == "Allow"
            and "Condition" not in statement
            and any(re.fullmatch(a.replace("*", ".*"), "s3:ListBucket") for a in actions)
            and any(re.fullmatch(r.replace("*", ".*"), f"arn:aws:s3:::{bucket}") for r in resources)
        ):
            return True
    return False


def _missing_key_reads(recorder: Recorder) -> list[str]:
    return [op.key for op in recorder.ops if op.kind == "get" and op.outcome == "not-found"]


def test_task_role_serves_prod_and_runs_event_jobs(
    aws_plan: Plan, account: Account, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    backend = S3Backend(account)
    model_file = linear_onnx(tmp_path / "lin.onnx")
    backend.publish("1.0.0", model_file)
    for name, value in account.task.env.items():
        monkeypatch.setenv(name, value)

    with recording(monkeypatch) as recorder:
        flows.run(backend, lambda: create_app(flows.settings(backend, tmp_path / "cache")).test_client(), model_file)

    missing = _missing_key_reads(recorder)
    assert missing, "the flow reads keys before they exist (@prod's version key, markers)"
    assert _allows_list_bucket_for_get(task_policy(aws_plan), account.bucket), (
        f"real S3 answers 403, not 404, for these missing keys without s3:ListBucket: {missing}"
    )


def test_publisher_policy_publishes_promotes_and_lists(aws_plan: Plan, account: Account, tmp_path: Path) -> None:
    assert _publisher_or_none(aws_plan) is not None, "the stack documents no publisher policy"
    env = account.publisher.env
    store = f"s3://{account.bucket}/{flows.MODEL_STORE}"
    model_file = str(linear_onnx(tmp_path / "lin.onnx"))
    runner = CliRunner()
    args = ["publish", model_file, "--name", flows.NAME, "--version", "9.0.0", "--to", store, "--no-latest"]
    published = runner.invoke(main, [*args, "--alias", "canary"], env=env)
    assert published.exit_code == 0, published.output
    again = runner.invoke(main, args, env=env)  # versions are immutable: the existence check needs a real 404
    assert again.exit_code != 0 and "already exists" in again.output, again.output
    promoted = runner.invoke(main, ["promote", f"{flows.NAME}@9.0.0", "--alias", "stable", "--store", store], env=env)
    assert promoted.exit_code == 0, promoted.output
    listed = runner.invoke(main, ["list", store, "--json"], env=env)
    assert listed.exit_code == 0 and "9.0.0" in listed.output, listed.output
    assert _allows_list_bucket_for_get(publisher_policy(aws_plan), account.bucket)


def test_policies_deny_what_they_do_not_grant(account: Account) -> None:
    """The enforcement is real: the task user cannot write the model or read outside its prefixes."""
    s3 = account.task.client("s3")
    with pytest.raises(s3.exceptions.ClientError, match="AccessDenied"):
        s3.put_object(Bucket=account.bucket, Key=f"{flows.MODEL_STORE}/{flows.NAME}/aliases/prod.json", Body=b"{}")
    account.admin.client("s3").put_object(Bucket=account.bucket, Key="private/secret.txt", Body=b"x")
    with pytest.raises(s3.exceptions.ClientError, match="AccessDenied"):
        s3.get_object(Bucket=account.bucket, Key="private/secret.txt")
