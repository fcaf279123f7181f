"""glibc malloc thresholds for a process that holds one large model.

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
