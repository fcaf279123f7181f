"""Local stack seed: create the emulator's bucket and publish the bundled demo model (1.0.0 as prod, 1.1.0)."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import boto3
import numpy as np

from function.settings import DEMO_STORE
from loader.manifest import Manifest

BUCKET = os.environ.get("STACK_BUCKET", "models")
STORE = f"s3://{BUCKET}/demo"
# Iris feature means and deviations: a plausible reference for the demo's drift panels.
MEAN, STD = [5.84, 3.06, 3.76, 1.2], [0.83, 0.43, 1.76, 0.76]


def main() -> int:
    """Idempotent: an existing bucket or version is left as it is."""
    s3 = boto3.client("s3")
    for _ in range(60):  # the emulator may still be starting
        try:
            buckets = [b["Name"] for b in s3.list_buckets()["Buckets"]]
            break
        except Exception:  # any connection error means "not up yet"
            time.sleep(1)
    else:
        print("the S3 emulator did not answer within 60 s", file=sys.stderr)
        return 1
    if BUCKET not in buckets:
        s3.create_bucket(Bucket=BUCKET)
    # 1.1.0 is the same network with twice the standard deviations in its pre-processing: flatter scores,
    # so a canary of it shows up on the confidence panels (`modelfn promote iris@1.1.0 --canary 30 ...`).
    for version, std_factor, aliases in (("1.0.0", 1.0, ["--alias", "prod"]), ("1.1.0", 2.0, ["--no-latest"])):
        if s3.list_objects_v2(Bucket=BUCKET, Prefix=f"demo/iris/{version}/manifest.json").get("KeyCount"):
            print(f"iris@{version} already published")
            continue
        if code := publish(version, std_factor, aliases):
            return code
    return 0


def publish(version: str, std_factor: float, aliases: list[str]) -> int:
    """Publish the bundled demo model as ``version`` with a drift reference (and std scaled by ``std_factor``)."""
    source = DEMO_STORE / "iris" / "1.0.0"
    manifest = Manifest.from_json((source / "manifest.json").read_bytes())
    with tempfile.TemporaryDirectory() as tmp:
        labels, reference = Path(tmp) / "labels.txt", Path(tmp) / "reference.npy"
        labels.write_text("\n".join(manifest.postprocess.labels or []) + "\n")
        np.save(reference, np.random.default_rng(0).normal(MEAN, STD, size=(1000, 4)))
        args = ["publish", str(source / manifest.model_file), "--name", "iris", "--version", version]
        args += ["--to", STORE, *aliases, "--labels", str(labels), "--reference", str(reference)]
        args += ["--softmax"] if manifest.postprocess.softmax else []
        args += ["--top-k", str(manifest.postprocess.top_k)] if manifest.postprocess.top_k else []
        pre = manifest.preprocess
        std = [v * std_factor for v in pre.std] if pre.std else None
        for flag, values in (("--mean", pre.mean), ("--std", std)):
            args += [flag, ",".join(map(str, values))] if values else []
        args += ["--scale", str(pre.scale)] if pre.scale is not None else []
        return subprocess.run([sys.executable, "-m", "function.cli", *args], check=False).returncode


if __name__ == "__main__":
    sys.exit(main())
