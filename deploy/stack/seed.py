"""Local stack seed: create the emulator's bucket and publish the bundled demo model with a drift reference."""

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
    if s3.list_objects_v2(Bucket=BUCKET, Prefix="demo/iris/1.0.0/manifest.json").get("KeyCount"):
        print("demo model already published")
        return 0
    version = DEMO_STORE / "iris" / "1.0.0"
    manifest = Manifest.from_json((version / "manifest.json").read_bytes())
    with tempfile.TemporaryDirectory() as tmp:
        labels, reference = Path(tmp) / "labels.txt", Path(tmp) / "reference.npy"
        labels.write_text("\n".join(manifest.postprocess.labels or []) + "\n")
        np.save(reference, np.random.default_rng(0).normal(MEAN, STD, size=(1000, 4)))
        args = ["publish", str(version / manifest.model_file), "--name", "iris", "--version", "1.0.0"]
        args += ["--to", STORE, "--alias", "prod", "--labels", str(labels), "--reference", str(reference)]
        args += ["--softmax"] if manifest.postprocess.softmax else []
        args += ["--top-k", str(manifest.postprocess.top_k)] if manifest.postprocess.top_k else []
        pre = manifest.preprocess
        for flag, values in (("--mean", pre.mean), ("--std", pre.std)):
            args += [flag, ",".join(map(str, values))] if values else []
        args += ["--scale", str(pre.scale)] if pre.scale is not None else []
        return subprocess.run([sys.executable, "-m", "function.cli", *args], check=False).returncode


if __name__ == "__main__":
    sys.exit(main())
