"""retain_freed_memory: a frame loop's large allocations stop page-faulting (real glibc, fresh processes)."""
from __future__ import annotations

import platform
import subprocess
import sys

import pytest

pytestmark = pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="mallopt tuning is glibc-only")

# 64 MB is above glibc's largest dynamic mmap threshold (32 MB on 64-bit), so by default every
# such block is mmapped on allocation and unmapped on free: each frame faults its pages in again.
_FRAME_LOOP = """
import resource, sys
import numpy as np
from mtl_perception.memory import retain_freed_memory
retained = retain_freed_memory() if sys.argv[1] == "retain" else False
np.ones(8 << 20).sum()  # first frame: the pages come in once either way
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(5):
    np.ones(8 << 20).sum()
print(retained, resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def _page_faults(mode: str) -> tuple[str, int]:
    out = subprocess.run([sys.executable, "-c", _FRAME_LOOP, mode], capture_output=True, text=True, check=True)
    retained, faults = out.stdout.split()
    return retained, int(faults)


def test_retained_memory_is_reused_without_page_faults():
    retained, faults = _page_faults("retain")
    default_retained, default_faults = _page_faults("default")
    assert (retained, default_retained) == ("True", "False")
    # glibc's default: every frame faults its 64 MB in again, at least once per 2 MB huge page
    # (numpy asks for huge pages on large arrays).
    assert default_faults >= 5 * 32
    assert faults < default_faults / 20  # retained: the heap block is reused
