"""What the process's two allocators hold and what of it is in use (a debug hook's figures).

A replica's RSS can grow while its live objects do not: memory freed but kept by an allocator, or spread
over partly used blocks, counts in RSS as much as a leak does. tracemalloc sees only live Python objects, so
neither it nor RSS alone tells a leak from retention. These are the allocators' own books: CPython's
small-object allocator (pymalloc: objects up to 512 B, in 1 MiB arenas it maps itself) and the C library's
malloc (everything larger, and native code's allocations), read in-process (SIGUSR1, :func:`modelmedic.app.dump_heap`).
"""

from __future__ import annotations

import ctypes
import os
import re
import sys
import tempfile

_PYMALLOC = {
    "pymalloc_arena_bytes": re.compile(r"^(\d+) arenas \* (\d+) bytes/arena", re.M),
    "pymalloc_allocated_bytes": re.compile(r"^# bytes in allocated blocks\s+=\s+([\d,]+)", re.M),
}


class _MallInfo2(ctypes.Structure):
    """glibc's ``struct mallinfo2`` (2.33 and later): sizes as ``size_t``."""

    _fields_ = [(name, ctypes.c_size_t) for name in (
        "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost")]


def pymalloc_books(stats: str) -> dict[str, int]:
    """The bytes pymalloc has mapped in arenas and the bytes of its blocks in use, from the text
    ``sys._debugmallocstats()`` writes (empty when pymalloc is off, e.g. ``PYTHONMALLOC=malloc``)."""
    books: dict[str, int] = {}
    arenas = _PYMALLOC["pymalloc_arena_bytes"].search(stats)
    allocated = _PYMALLOC["pymalloc_allocated_bytes"].search(stats)
    if arenas and allocated:
        books["pymalloc_arena_bytes"] = int(arenas[1]) * int(arenas[2])
        books["pymalloc_allocated_bytes"] = int(allocated[1].replace(",", ""))
    return books


def _debugmallocstats() -> str:
    """``sys._debugmallocstats()``'s report: it writes to the C ``stderr`` only, so file descriptor 2 points at a
    temporary file while it runs (a few ms; anything else written to stderr meanwhile lands there too)."""
    with tempfile.TemporaryFile("w+") as out:
        sys.stderr.flush()
        saved = os.dup(2)
        try:
            os.dup2(out.fileno(), 2)
            sys._debugmallocstats()
        finally:
            os.dup2(saved, 2)
            os.close(saved)
        out.seek(0)
        return out.read()


def _mallinfo2() -> _MallInfo2 | None:
    """glibc's ``mallinfo2()``, or None under another C library (musl) or an older glibc."""
    try:  # the symbols already loaded into this process, the C library's among them (no ldconfig run)
        function = ctypes.CDLL(None).mallinfo2
    except (OSError, AttributeError):
        return None
    function.restype = _MallInfo2
    return function()


def books() -> dict[str, int]:
    """Bytes held and in use by each allocator: ``pymalloc_arena_bytes`` (mapped in arenas) and
    ``pymalloc_allocated_bytes`` (its blocks in use); with glibc ``malloc_heap_bytes`` (taken from the system
    outside mmap), ``malloc_mmap_bytes`` (chunks mapped one by one, all in use), ``malloc_used_bytes`` (in use,
    both) and ``malloc_free_bytes`` (free but kept). Held less in use is what the allocators keep: when that
    grows and in use does not, RSS grows by retention or fragmentation, not by live objects."""
    found = pymalloc_books(_debugmallocstats())
    info = _mallinfo2()
    if info is not None:
        found.update(malloc_heap_bytes=info.arena, malloc_mmap_bytes=info.hblkhd,
                     malloc_used_bytes=info.uordblks + info.hblkhd, malloc_free_bytes=info.fordblks)
    return found
