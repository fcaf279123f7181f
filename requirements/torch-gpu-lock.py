#!/usr/bin/env python3
"""Write requirements/torch-gpu.txt: PyPI's CUDA build of torch and everything it needs beyond cpu.txt.

Resolved from the wheels' published metadata (PEP 658 ``.metadata`` files, a few KB each), so no
CUDA wheel is downloaded: the image installs exactly these pins with ``pip install --no-deps``.
Target: CPython 3.12 on manylinux x86_64 (the Python of the Ubuntu 24.04 CUDA bases).

    python3 requirements/torch-gpu-lock.py [TORCH_VERSION]      (default 2.13.0; needs PyPI)
"""

from __future__ import annotations

import functools
import io
import json
import os
import ssl
import sys
import tomllib
import urllib.error
import urllib.request
import zipfile
from email.parser import Parser
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name, parse_wheel_filename
from packaging.version import Version

HERE = Path(__file__).resolve().parent
PYPI = os.environ.get("PYPI_URL", "https://pypi.org")
SMALL = 20_000_000  # never fetch a CUDA wheel whole: only small ones lacking a metadata file
TAGS = {"cp312", "abi3", "py3", "none"}
ENV = {"python_version": "3.12", "python_full_version": "3.12.3", "platform_system": "Linux",
       "sys_platform": "linux", "platform_machine": "x86_64", "os_name": "posix",
       "implementation_name": "cpython", "platform_python_implementation": "CPython"}  # fmt: skip
_ctx = ssl.create_default_context(cafile=os.environ.get("PIP_CERT") or None)


@functools.cache
def _get(url: str) -> bytes:
    with urllib.request.urlopen(url, context=_ctx, timeout=60) as response:  # noqa: S310 (https PyPI)
        return bytes(response.read())


def _pins(path: Path) -> dict[str, str]:
    lines = [ln.split("#")[0].strip() for ln in path.read_text().splitlines()]
    return {canonicalize_name(ln.split("==")[0]): ln.split("==")[1] for ln in lines if "==" in ln}


def _wheel(files: list[dict]) -> dict | None:
    """The release file this platform installs: a cp312/abi3/py3 wheel for manylinux x86_64 or any."""
    for f in files:
        if not f["filename"].endswith(".whl") or f.get("yanked"):
            continue
        tags = parse_wheel_filename(f["filename"])[3]
        if any(t.interpreter in TAGS and t.abi in TAGS | {"cp312"} and
               (t.platform == "any" or (t.platform.startswith("manylinux") and t.platform.endswith("x86_64")))
               for t in tags):  # fmt: skip
            return f
    return None


def _choose(name: str, spec: SpecifierSet, preferred: dict[str, str], closed: bool) -> tuple[str, int, list[str]]:
    """The newest release matching ``spec`` with a wheel for this platform whose dependencies can be read."""
    url = f"{PYPI}/pypi/{name}/json"
    releases = json.loads(_get(url))["releases"]
    if name in preferred and Version(preferred[name]) in spec:
        candidates = [preferred[name]]
    else:
        candidates = sorted((v for v in releases if Version(v) in spec and not Version(v).is_prerelease),
                            key=Version, reverse=True)  # fmt: skip
    for version in candidates:
        wheel = _wheel(releases.get(version, []))
        if wheel is None:
            continue
        requires = [] if closed else _requires(urljoin(url, wheel["url"]), int(wheel["size"]))
        if requires is not None:
            return version, int(wheel["size"]), requires
    raise SystemExit(f"no cp312 manylinux x86_64 wheel of {name} matches {spec} with readable metadata")


def resolve(torch_version: str) -> dict[str, tuple[str, int]]:
    """name -> (version, wheel bytes) for torch and its closure, cpu.txt's pins taking precedence."""
    cpu = _pins(HERE / "cpu.txt")
    preferred = {**_pins(HERE / "torch-cpu.txt"), **cpu}
    constraints: dict[str, SpecifierSet] = {}
    while True:  # walk the closure; on a conflict, narrow that package and walk again
        roots = [Requirement(f"torch=={torch_version}"), *(Requirement(r) for r in _extra("nvml"))]
        chosen, conflict = _walk(roots, constraints, preferred, cpu)
        if conflict is None:
            return {n: (v, size) for n, (v, size, _) in chosen.items() if n not in cpu}
        name, spec = conflict
        constraints[name] = constraints.get(name, SpecifierSet()) & spec


def _requires(url: str, size: int) -> list[str] | None:
    """Requires-Dist of a wheel from its PEP 658 metadata file; small wheels without one are read whole.

    None for a large wheel without a metadata file: the caller tries an older release instead of
    downloading it (a CUDA library wheel is hundreds of MB).
    """
    try:
        text = _get(url + ".metadata").decode()
    except urllib.error.HTTPError as exc:
        if exc.code != 404:
            raise
        if size > SMALL:
            return None
        with zipfile.ZipFile(io.BytesIO(_get(url))) as wheel:
            [name] = [n for n in wheel.namelist() if n.count("/") == 1 and n.endswith(".dist-info/METADATA")]
            text = wheel.read(name).decode()
    return Parser().parsestr(text).get_all("Requires-Dist") or []


def _extra(name: str) -> list[str]:
    """An optional-dependency group of pyproject.toml (the GPU image carries nvml for utilisation)."""
    with (HERE.parent / "pyproject.toml").open("rb") as f:
        return list(tomllib.load(f)["project"]["optional-dependencies"][name])


def _walk(
    roots: list[Requirement], constraints: dict[str, SpecifierSet], preferred: dict[str, str], cpu: dict[str, str]
) -> tuple[dict, Any]:
    queue, chosen = list(roots), {}
    while queue:
        # Exact pins first (breadth first otherwise): torch pins its CUDA libraries, their own deps are looser.
        req = queue.pop(next((i for i, r in enumerate(queue) if "==" in str(r.specifier)), 0))
        name = canonicalize_name(req.name)
        if name not in chosen:
            spec = req.specifier & constraints.get(name, SpecifierSet())
            chosen[name] = _choose(name, spec, preferred, closed=name in cpu)  # cpu.txt is closed already
        version, _, requires = chosen[name]
        if Version(version) not in req.specifier:
            return chosen, (name, req.specifier)
        for line in requires:
            dep = Requirement(line)
            if dep.marker is None or any(dep.marker.evaluate({**ENV, "extra": e}) for e in [*req.extras, ""]):
                queue.append(dep)
    return chosen, None


def main() -> None:
    torch_version = sys.argv[1] if len(sys.argv) > 1 else "2.13.0"
    pins = resolve(torch_version)
    total = sum(size for _, size in pins.values())
    lines = [
        "# Generated by requirements/torch-gpu-lock.py from the wheels' published metadata; do not edit by hand.",
        f"# PyPI's torch=={torch_version} (a CUDA build), modelfn[nvml] and what they need beyond cpu.txt,",
        f"# for CPython 3.12 on manylinux x86_64; {len(pins)} wheels, {total / 1e9:.2f} GB compressed on PyPI.",
        "-r cpu.txt",
        *sorted(f"{n}=={v}" for n, (v, _) in pins.items()),
    ]
    (HERE / "torch-gpu.txt").write_text("\n".join(lines) + "\n")
    for name, (version, size) in sorted(pins.items(), key=lambda p: -p[1][1]):
        print(f"{size / 1e6:9.1f} MB  {name}=={version}", file=sys.stderr)


if __name__ == "__main__":
    main()
