"""Keep freed heap memory in the process, so that a steady frame loop does not page-fault.

glibc returns large freed blocks to the kernel (``munmap`` for blocks above the mmap
threshold, heap trimming above the trim threshold); the next frame allocates the same sizes
again and touches every page afresh: one minor page fault per 4 KiB, expensive in a VM.
Instance grouping at 512 x 1024 alone took thousands of page faults a frame and ran ~1.5x
slower for them (docs/measurements.md). Torch's CPU
allocator does not cache, so a frame loop of tensor code pays this unless the C allocator
keeps what it freed.

The real-time Linux guidance (Linux Foundation RT wiki, "Memory for Real-time Applications";
ROS 2 real-time examples) is ``mallopt(M_MMAP_MAX, 0)`` (no mmap for large blocks: they come
from the heap and are reused) and ``mallopt(M_TRIM_THRESHOLD, -1)`` (never give heap back).
The price is that the process keeps its peak heap (measured: +64 MB resident for the node's
pipeline at 256 x 512). The setting is process-wide, so only process entry points call this
(the node's ``main`` and ``mtl-perception bench``, which measures what the node runs), never
library code that may live in someone else's process. The node's ``retain_freed_memory: false``
skips it (memory-tight machines), and its ``max_input_pixels`` bounds the peak one oversized
frame could pin (a 4000 x 6000 frame: 1.2 GB resident for good).
"""
from __future__ import annotations

import ctypes
import platform

#: glibc's mallopt parameter numbers (malloc.h).
_M_TRIM_THRESHOLD = -1
_M_MMAP_MAX = -4


def retain_freed_memory() -> bool:
    """Make glibc's malloc keep freed memory for reuse; False where the C library is not glibc."""
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    libc = ctypes.CDLL(None)  # the symbols already loaded into this process, glibc's malloc among them
    return bool(libc.mallopt(_M_MMAP_MAX, 0)) and bool(libc.mallopt(_M_TRIM_THRESHOLD, -1))
