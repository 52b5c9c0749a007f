"""The allocators' books (modelmedic.allocators): read from this process, they follow what it allocates."""

from __future__ import annotations

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
