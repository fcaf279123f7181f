"""The suite's Docker images: stable tags, reused by every run, replaced in place, removable in one go.

Each build tags its multi-stage ``build`` stage too (``<tag>-build``): the legacy builder would
otherwise leave that stage behind as an untagged image on every rebuild. When a rebuild moves a tag,
the image it replaced is removed. ``make clean-images`` removes them all (``python -m
tests.integration.images --clean`` does the same; the base image is left alone: it is rebuilt only by
scripts/build-base-image.sh, which takes minutes).
"""

from __future__ import annotations

import argparse
import subprocess
import sys

FUNCTION = {"cpu": "modelfn-it:cpu", "torch-cpu": "modelfn-it:torch-cpu"}
EMULATORS = {"s3": "modelfn-emu-s3:it", "gcs": "modelfn-emu-gcs:it", "azure": "modelfn-emu-azurite:it"}
PROBE = "modelfn-it:context-probe"  # the build-context test's throwaway image
EMULATOR_FILES = {"s3": "s3", "gcs": "gcs", "azure": "azurite"}  # docker/<name>.Dockerfile
# Stages built (and tagged) on their own, per image: the Dockerfile's and azurite.Dockerfile's "build".
STAGES = {FUNCTION["cpu"]: ("build",), FUNCTION["torch-cpu"]: ("build",), EMULATORS["azure"]: ("build",)}


def stage_tag(tag: str, stage: str) -> str:
    """``modelfn-it:cpu`` + ``build`` -> ``modelfn-it:cpu-build``."""
    return f"{tag}-{stage}"


def all_tags() -> list[str]:
    """Every tag the suite creates (images and their stages)."""
    tags = [*FUNCTION.values(), *EMULATORS.values()]
    return [*tags, *(stage_tag(t, s) for t in tags for s in STAGES.get(t, ())), PROBE]


def clean() -> list[str]:
    """Remove every suite image that exists; the tags removed."""
    removed = []
    for tag in all_tags():
        proc = subprocess.run(["docker", "image", "rm", tag], capture_output=True, text=True, check=False)
        if proc.returncode == 0:
            removed.append(tag)
    return removed


def main(argv: list[str] | None = None) -> int:
    """``--list`` prints the tags; ``--clean`` removes the images."""
    parser = argparse.ArgumentParser(description="the integration suite's Docker images")
    parser.add_argument("--clean", action="store_true")
    args = parser.parse_args(argv)
    for tag in clean() if args.clean else all_tags():
        print(tag)
    return 0


if __name__ == "__main__":
    sys.exit(main())
