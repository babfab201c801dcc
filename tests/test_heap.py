"""peftbench.heap: with the threshold fixed, a block above it keeps its own mapping even after glibc would have
raised its threshold (a freed 8 MiB block raises it to 8 MiB, so a 4 MiB block then comes from the heap); and
``release`` hands back free pages that sit below a live block."""

from __future__ import annotations

import subprocess
import sys

import pytest

from peftbench import heap

PROBE = """
import ctypes, sys
from peftbench import heap

class MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks",
                                                     "fsmblks", "uordblks", "fordblks", "keepcost")]

libc = ctypes.CDLL("libc.so.6")
libc.malloc.restype, libc.free.argtypes, libc.mallinfo2.restype = ctypes.c_void_p, [ctypes.c_void_p], MallInfo2
fixed = heap.fix_mmap_threshold(float(sys.argv[1])) if sys.argv[1] != "none" else False
libc.free(libc.malloc(8 << 20))
block = libc.malloc(4 << 20)
print(fixed, libc.mallinfo2().hblkhd >> 20)
"""

linux_glibc = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt is Linux-only")


def probe(threshold: str) -> list[str]:
    return subprocess.run([sys.executable, "-c", PROBE, threshold], capture_output=True, text=True,
                          check=True).stdout.split()


@linux_glibc
def test_a_fixed_threshold_keeps_blocks_in_their_own_mappings() -> None:
    assert probe("none") == ["False", "0"]  # glibc raised its threshold: the 4 MiB block sits in the heap
    assert probe("1") == ["True", "4"]  # fixed at 1 MiB: the 4 MiB block has its own mapping


def test_no_threshold_changes_nothing() -> None:
    assert heap.fix_mmap_threshold(None) is False


RELEASE = """
import ctypes
from peftbench import heap

def resident_mib():
    return int(open("/proc/self/statm").read().split()[1]) * 4096 >> 20

libc = ctypes.CDLL("libc.so.6")
libc.malloc.restype, libc.free.argtypes, libc.memset.argtypes = ctypes.c_void_p, [ctypes.c_void_p], [
    ctypes.c_void_p, ctypes.c_int, ctypes.c_size_t]
heap.fix_mmap_threshold(16)  # every block below from the heap, as after glibc has raised its threshold
blocks = [libc.malloc(1 << 20) for _ in range(200)]
for block in blocks:
    libc.memset(block, 1, 1 << 20)
for block in blocks[:-1]:  # the last one stays: the freed pages sit below it, where the heap cannot shrink
    libc.free(block)
before = resident_mib()
print(heap.release(), before - resident_mib())
"""


@linux_glibc
def test_release_returns_free_pages_below_live_blocks() -> None:
    released, freed_mib = subprocess.run([sys.executable, "-c", RELEASE], capture_output=True, text=True,
                                         check=True).stdout.split()
    assert released == "True"
    assert int(freed_mib) > 150  # 199 MiB were free under the last live block
