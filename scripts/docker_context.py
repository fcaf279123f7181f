"""Write a Docker build context as a tar stream: the repository's .dockerignore rules plus extra files.

``.dockerignore`` keeps ``wheelhouse/`` (a 180 MB torch wheel) out of every context; the one build that
needs the wheel streams it in explicitly:

    python scripts/docker_context.py --add wheelhouse/torch.whl=/opt/wheels/torch-...whl \\
      | docker build -f Dockerfile --build-arg VARIANT=torch-cpu --build-arg TORCH_FIND_LINKS=/src/torch -
"""

from __future__ import annotations

import argparse
import sys
import tarfile
from pathlib import Path
from typing import IO

ROOT = Path(__file__).resolve().parents[1]


def dockerignore_patterns(root: Path) -> list[str]:
    """The patterns of ``root/.dockerignore`` (comments and blank lines dropped)."""
    path = root / ".dockerignore"
    lines = path.read_text().splitlines() if path.exists() else []
    return [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]


def included(root: Path, dockerfile: str = "Dockerfile") -> list[str]:
    """Paths (relative, files and folders) the Docker CLI would send for ``root``, sorted."""
    from docker.utils.build import exclude_paths  # the docker SDK's implementation of the CLI's rules

    return sorted(exclude_paths(str(root), dockerignore_patterns(root), dockerfile=dockerfile))


def write_context(out: IO[bytes], root: Path, extra: dict[str, Path], dockerfile: str = "Dockerfile") -> None:
    """Stream the context of ``root`` plus ``extra`` (archive name -> local file) as an uncompressed tar."""
    # GNU format: PAX would put an extended header first, which the CLI does not recognise as a tar.
    with tarfile.open(fileobj=out, mode="w|", format=tarfile.GNU_FORMAT) as tar:
        for name in included(root, dockerfile):
            tar.add(root / name, arcname=name, recursive=False)
        for name, path in extra.items():
            tar.add(path, arcname=name)


def main(argv: list[str] | None = None) -> int:
    """CLI: the context tar on stdout."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=ROOT)
    parser.add_argument("--dockerfile", default="Dockerfile")
    parser.add_argument("--add", action="append", default=[], metavar="NAME=PATH", help="extra file (repeatable)")
    args = parser.parse_args(argv)
    extra = {}
    for item in args.add:
        name, sep, path = item.partition("=")
        if not sep or not Path(path).is_file():
            parser.error(f"--add needs NAME=PATH with an existing file: {item}")
        extra[name] = Path(path)
    write_context(sys.stdout.buffer, args.root, extra, args.dockerfile)
    return 0


if __name__ == "__main__":
    sys.exit(main())
