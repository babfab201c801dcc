"""A run's C heap (glibc, Linux): free pages handed back after each evaluation, and an opt-in fixed mmap
threshold so that the heap does not grow with the batch shapes at all.

glibc serves a block of at least ``M_MMAP_THRESHOLD`` bytes with its own ``mmap`` and returns it to the system when
it is freed, but it raises that threshold to the size of every such block freed (up to 32 MiB). After the first
optimizer step every activation is below it, so activations come from the heap, and batches of varying shapes
(dynamic padding, length grouping) leave free holes there that are never returned: the resident size of the
quickstart crept from 1.4 to 2.1 GiB over its 126 steps. A fixed threshold (``mallopt``, which also switches the
raising off) keeps activations in their own mappings, but every fresh mapping is paid in page faults. Quickstart on
2 idle cores (peak RSS, wall): glibc's own 1.98-2.03 GB, 77-82 s; 4 MiB 1.90-2.02 GB, 77-82 s (grouped batches'
activations are smaller); 1 MiB 1.39 GB, 112-121 s; 0.25 MiB 1.18 GB, 141-143 s. So the default,
``trainer.malloc_mmap_threshold_mb: null``, leaves glibc as it is; set it where memory, not time, is short.
(These figures predate the fused low-rank update, ``peftbench/methods/lowrank.py``, which removed LoRA's three
output-sized temporaries per adapted matrix: with glibc's own threshold the quickstart now peaks at ~1.47 GB.)

:func:`release` hands the heap's free pages back after each evaluation (``malloc_trim``). Evaluation batches have
other shapes than training batches (``trainer.eval_batch_size``, sorted lengths), so without it the next training
steps grow the heap around the evaluation's leftovers. Measured on the quickstart: peak RSS 1,826 -> 1,771 MB at
the same wall time (the next steps fault in fresh pages once). Trimming after every step would bound the heap at
the largest step's need (1,441 MB) but costs as much as a low threshold (+25% wall time).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import sys

M_MMAP_THRESHOLD = -3  # glibc's <malloc.h>


@functools.cache
def _libc() -> ctypes.CDLL | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    except OSError:
        return None


def release() -> bool:
    """Return the heap's free pages to the system; ``False`` where glibc's ``malloc_trim`` is not there."""
    trim = getattr(_libc(), "malloc_trim", None)
    return bool(trim(0)) if trim is not None else False


def fix_mmap_threshold(megabytes: float | None) -> bool:
    """Serve blocks of ``megabytes`` and more from their own mappings from now on; ``False`` where that cannot be
    set (not Linux, not glibc, or ``None``)."""
    mallopt = getattr(_libc(), "mallopt", None) if megabytes is not None else None  # musl has no mallopt
    return bool(mallopt(M_MMAP_THRESHOLD, int(megabytes * 2**20))) if mallopt is not None else False
