"""An opt-in C heap that does not grow with a run's batch shapes (glibc, Linux).

glibc serves a block of at least ``M_MMAP_THRESHOLD`` bytes with its own ``mmap`` and returns it to the system when
it is freed, but it raises that threshold to the size of every such block freed (up to 32 MiB). After the first
optimizer step every activation is below it, so activations come from the heap, and batches of varying shapes
(dynamic padding, length grouping) leave free holes there that are never returned: the resident size of the
quickstart crept from 1.4 to 2.1 GiB over its 126 steps. A fixed threshold (``mallopt``, which also switches the
raising off) keeps activations in their own mappings, but every fresh mapping is paid in page faults. Quickstart on
2 idle cores (peak RSS, wall): glibc's own 1.98-2.03 GB, 77-82 s; 4 MiB 1.90-2.02 GB, 77-82 s (grouped batches'
activations are smaller); 1 MiB 1.39 GB, 112-121 s; 0.25 MiB 1.18 GB, 141-143 s. So the default,
``trainer.malloc_mmap_threshold_mb: null``, leaves glibc as it is; set it where memory, not time, is short.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys

M_MMAP_THRESHOLD = -3  # glibc's <malloc.h>


def fix_mmap_threshold(megabytes: float | None) -> bool:
    """Serve blocks of ``megabytes`` and more from their own mappings from now on; ``False`` where that cannot be
    set (not Linux, not glibc, or ``None``)."""
    if megabytes is None or not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # musl and others have no mallopt
        return False
    return bool(mallopt(M_MMAP_THRESHOLD, int(megabytes * 2**20)))
