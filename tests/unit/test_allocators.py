"""The allocators' books (modelmedic.allocators): read from this process, they follow what it allocates."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from modelmedic import allocators

glibc = pytest.mark.skipif(allocators._mallinfo2() is None, reason="mallinfo2 is glibc's (2.33 and later)")


def test_pymalloc_books_are_read_from_its_report() -> None:
    report = """Small block threshold = 512, in 32 size classes.
# arenas allocated total           =                   44
# arenas allocated current         =                   44
44 arenas * 1048576 bytes/arena    =           46,137,344

# bytes in allocated blocks        =           44,681,216
# bytes in available blocks        =              560,144
"""
    assert allocators.pymalloc_books(report) == {"pymalloc_arena_bytes": 46_137_344,
                                                 "pymalloc_allocated_bytes": 44_681_216}
    assert allocators.pymalloc_books("") == {}  # pymalloc off (PYTHONMALLOC=malloc): no such lines


def test_small_objects_count_in_pymalloc_and_stderr_is_given_back(capfd) -> None:
    before = allocators.books()
    kept = [(i, str(i)) for i in range(100_000)]  # ~10 MB of tuples and short strings, all under 512 B
    after = allocators.books()
    grew = after["pymalloc_allocated_bytes"] - before["pymalloc_allocated_bytes"]
    assert 8e6 < grew < 20e6 and after["pymalloc_arena_bytes"] >= after["pymalloc_allocated_bytes"]
    print("still ours", file=sys.stderr)
    assert capfd.readouterr().err == "still ours\n" and len(kept) == 100_000


@glibc
def test_large_objects_count_in_malloc_in_use_and_leave_it_when_freed() -> None:
    before = allocators.books()["malloc_used_bytes"]
    kept = [bytearray(50_000) for _ in range(400)]  # 20 MB in blocks over pymalloc's 512 B
    held = allocators.books()
    assert 19e6 < held["malloc_used_bytes"] - before < 22e6
    assert held["malloc_heap_bytes"] + held["malloc_mmap_bytes"] >= held["malloc_used_bytes"]
    del kept
    assert allocators.books()["malloc_used_bytes"] - before < 1e6


def test_malloc_info_holes_are_summed_by_size_over_every_arena() -> None:
    report = """<malloc version="1">
<heap nr="0"><sizes>
  <size from="65" to="65" total="130" count="2"/>
  <size from="100000" to="300000" total="400000" count="2"/>
  <unsorted from="2000000" to="3000000" total="5000000" count="2"/>
</sizes><total type="rest" count="7" size="5500130"/><system type="current" size="9000000"/></heap>
<heap nr="1"><sizes>
  <size from="40000" to="60000" total="100000" count="2"/>
</sizes><system type="current" size="1000000"/></heap>
<total type="mmap" count="1" size="200000"/><system type="current" size="10000000"/>
</malloc>"""
    assert allocators.malloc_info_books(report) == {
        "malloc_arenas": 2, "malloc_system_bytes": 10_000_000, "malloc_hole_largest_bytes": 3_000_000,
        "malloc_holes_small_bytes": 100_130, "malloc_holes_medium_bytes": 400_000, "malloc_holes_large_bytes": 5_000_000}


FREED_BETWEEN_LIVE_ONES = """
import ctypes, json
from modelmedic import allocators
libc = ctypes.CDLL(None)
assert libc.mallopt(-3, 64 << 20)  # M_MMAP_THRESHOLD: 64 MB
blocks = [bytearray(1_500_000) for _ in range(8)]
before = allocators.books()
del blocks[::2]
print(json.dumps({"before": before, "held": allocators.books()}))
"""


@glibc
def test_freed_large_blocks_between_live_ones_are_large_holes() -> None:
    """Blocks of 1.5 MB held between live ones, then every other freed: holes of that size, not the heap's end
    (mmap off for them: the default threshold would map each on its own and unmap it when freed). In a fresh
    interpreter: in this one, holes that earlier tests left are merged with the freed blocks, or the blocks
    carved out of them (the fresh-clone CI run read 9.9 and 10.5 MB of new large holes for 6)."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
    out = subprocess.run([sys.executable, "-c", FREED_BETWEEN_LIVE_ONES], capture_output=True, text=True, env=env,
                         check=True, timeout=60)
    books = json.loads(out.stdout)
    before, held = books["before"], books["held"]
    assert 6.0e6 < held["malloc_holes_large_bytes"] - before["malloc_holes_large_bytes"] < 6.5e6
    assert held["malloc_hole_largest_bytes"] >= 1.5e6
    assert held["malloc_arenas"] >= 1 and held["malloc_system_bytes"] >= held["malloc_heap_bytes"]
