"""Memory of a process that holds one large model: glibc's malloc thresholds, huge pages for the weights.

glibc serves a large allocation with its own mmap, but after such a block is freed it raises its mmap
threshold (up to 32 MB) so that the next blocks of that size come from the heap, and the heap keeps what is
freed there. Loading a model allocates and frees many weight-sized blocks (initializers, then their prepacked
copies): with the dynamic threshold ~80 MB of them stayed resident after a 100 MB ONNX model was loaded (PSS of
the container 290 -> 212 MB with these thresholds). A fixed mmap threshold returns freed weight-sized blocks to
the system; a high trim threshold keeps the heap from shrinking and growing again around every batch (with
glibc's default trim threshold, the fixed mmap threshold alone cost ~10% of c=32 throughput).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import threading
import time
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger("modelfn.memory")
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # <malloc.h>
MMAP_THRESHOLD = 4 * 1024 * 1024  # blocks from this size up are mmapped, and unmapped when freed
# The heap gives memory back only when this much is free at its top: well above a batch's buffers, and low
# enough that each thread's arena does not sit on much (64 MB broke the body budget of 5 concurrent 10 MB bodies).
TRIM_THRESHOLD = 16 * 1024 * 1024
# glibc reads these itself at start-up; an operator who sets one keeps glibc's reading of both.
GLIBC_ENV = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_")


def tune_malloc(environ: dict[str, str]) -> bool:
    """Fix glibc's mmap and trim thresholds (inherited by forked workers); False where it does not apply."""
    if any(name in environ for name in GLIBC_ENV):
        return False
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
        libc.gnu_get_libc_version  # noqa: B018  (glibc only: musl has a mallopt that ignores these)
    except (OSError, AttributeError, TypeError):
        return False
    ok = mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD) == 1 and mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD) == 1
    if not ok:
        log.warning("mallopt refused the malloc thresholds; glibc's defaults stay")
    return ok


# Transparent huge pages for the weights. A one-row predict() streams every weight from memory (100 MB per call
# for the MLP of bench/); with 4 KB pages that is ~25,000 TLB misses, with 2 MB pages ~50. Measured here, c=1
# p50 of the 100 MB MLP 4.29 -> 3.95 ms (V2 binary, medians of 6 alternating starts, HUGE_PAGES off/on); 32-row
# batches are compute-bound and gained nothing measurable. Where THP is in "madvise" mode (this machine's
# kernel; the mode differs between distributions), nothing is huge unless asked: MADV_COLLAPSE (Linux 6.1)
# rebuilds the already loaded weights in place; MADV_HUGEPAGE alone leaves it to khugepaged, which gets there in
# minutes, and keeps later faults in the range huge. The copy runs at ~3 ms per MB on this machine (0.25-0.36 s
# for the MLP), so it runs beside serving, not before READY.
MADV_HUGEPAGE, MADV_COLLAPSE = 14, 25
HUGE_PAGE = 2 * 1024 * 1024
THP_MODE = Path("/sys/kernel/mm/transparent_hugepage/enabled")
MIN_MAPPING = 8 * 1024 * 1024  # a weight-sized region (glibc mmaps each block from MMAP_THRESHOLD up)
MIN_RESIDENT = 0.9  # collapsing fills every page of the range: only nearly full ranges, or memory grows


@dataclass(frozen=True)
class HugePages:
    """What ``back_with_huge_pages`` did: bytes collapsed now, and bytes only advised (left to khugepaged)."""

    collapsed: int = 0
    advised: int = 0


def huge_pages_later(model: str) -> threading.Thread:
    """``back_with_huge_pages`` in a thread of its own (requests are served meanwhile), then one log line."""

    def collapse() -> None:
        started = time.perf_counter()
        done = back_with_huge_pages()
        fields = {"model": model, "collapsed_bytes": done.collapsed, "advised_bytes": done.advised}
        log.info("huge pages", extra={"fields": {**fields, "seconds": round(time.perf_counter() - started, 3)}})

    thread = threading.Thread(target=collapse, name="modelfn-hugepages", daemon=True)
    thread.start()
    return thread


def back_with_huge_pages(smaps: Path = Path("/proc/self/smaps")) -> HugePages:
    """Back this process's large, resident anonymous mappings (a loaded model's weights) with huge pages."""
    if not _thp_available():
        return HugePages()
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        madvise = libc.madvise
    except (OSError, AttributeError):
        return HugePages()
    madvise.argtypes = (ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int)
    collapsed = advised = 0
    for start, length in _weight_ranges(smaps.read_text()):
        if madvise(start, length, MADV_HUGEPAGE) != 0:
            continue  # not anonymous memory after all (or gone): leave it as it is
        if madvise(start, length, MADV_COLLAPSE) == 0:
            collapsed += length
        else:  # EINVAL before Linux 6.1; EAGAIN/ENOMEM when no huge page was free: khugepaged may do it later
            advised += length
    return HugePages(collapsed, advised)


def _thp_available() -> bool:
    try:
        return "[never]" not in THP_MODE.read_text()
    except OSError:  # not Linux, or a kernel without THP
        return False


def _weight_ranges(text: str) -> list[tuple[int, int]]:
    """(start, length) of the huge-page-aligned part of each private anonymous mapping worth collapsing."""
    ranges: list[tuple[int, int]] = []
    mapping: tuple[int, int] | None = None
    for line in text.splitlines():
        head = line.split()
        if len(head) >= 5 and "-" in head[0] and not head[0].endswith(":"):
            low, high = (int(x, 16) for x in head[0].split("-"))
            anonymous = len(head) == 5 or head[5] == "[heap]"
            mapping = (low, high) if head[1] == "rw-p" and anonymous and high - low >= MIN_MAPPING else None
        elif mapping is not None and head and head[0] == "Rss:":
            low, high = mapping
            start, end = -(-low // HUGE_PAGE) * HUGE_PAGE, high // HUGE_PAGE * HUGE_PAGE
            if int(head[1]) * 1024 >= MIN_RESIDENT * (high - low) and end > start:
                ranges.append((start, end - start))
            mapping = None
    return ranges
