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
import xml.etree.ElementTree as ElementTree

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


HOLES = ((64 << 10, "malloc_holes_small_bytes"), (1 << 20, "malloc_holes_medium_bytes"),
         (1 << 62, "malloc_holes_large_bytes"))
"""Free chunks in malloc's bins by size (under 64 KiB, under 1 MiB, larger): where the free part of its heap is.
A heap whose free part is a few large holes keeps them for blocks of that size (a dict's table, a buffer); one of
many small holes is fragmented by small blocks still in use between them."""


def malloc_info_books(report: str) -> dict[str, int]:
    """From glibc's ``malloc_info()`` XML, over every arena (``mallinfo2()`` reads the main one only): the arenas,
    the bytes they took from the system, the bytes of free chunks in their bins by size (:data:`HOLES`) and the
    largest. The top chunk (the heap's free end, which ``malloc_trim`` could give back) is not a hole: it is
    ``malloc_top_bytes``, from ``mallinfo2()``."""
    root = ElementTree.fromstring(report)
    found = dict.fromkeys((name for _, name in HOLES), 0)
    found.update(malloc_arenas=len(root.findall("heap")), malloc_hole_largest_bytes=0,
                 malloc_system_bytes=sum(int(s.get("size")) for s in root.findall("system[@type='current']")))
    for heap in root.iterfind("heap/sizes"):
        for bin_ in heap:  # <size> and <unsorted>: from/to are the least and largest chunk in the bin
            total, count = int(bin_.get("total")), int(bin_.get("count"))
            if count:
                found[next(name for below, name in HOLES if total // count < below)] += total
                found["malloc_hole_largest_bytes"] = max(found["malloc_hole_largest_bytes"], int(bin_.get("to")))
    return found


def _malloc_info() -> str | None:
    """glibc's ``malloc_info(0, ...)`` report, written into memory (``open_memstream``), or None without them."""
    try:
        libc = ctypes.CDLL(None)
        libc.open_memstream.restype = ctypes.c_void_p
        libc.open_memstream.argtypes = [ctypes.POINTER(ctypes.c_void_p), ctypes.POINTER(ctypes.c_size_t)]
        libc.malloc_info.argtypes = [ctypes.c_int, ctypes.c_void_p]
        libc.fclose.argtypes = libc.free.argtypes = [ctypes.c_void_p]
    except (OSError, AttributeError):
        return None
    text, size = ctypes.c_void_p(), ctypes.c_size_t()
    stream = libc.open_memstream(ctypes.byref(text), ctypes.byref(size))
    if not stream:
        return None
    try:
        libc.malloc_info(0, stream)
    finally:
        libc.fclose(stream)  # sets text and size
    try:
        return ctypes.string_at(text.value, size.value).decode()
    finally:
        libc.free(text.value)


def books() -> dict[str, int]:
    """Bytes held and in use by each allocator: ``pymalloc_arena_bytes`` (mapped in arenas) and
    ``pymalloc_allocated_bytes`` (its blocks in use); with glibc ``malloc_heap_bytes`` (taken from the system
    outside mmap), ``malloc_mmap_bytes`` (chunks mapped one by one, all in use), ``malloc_used_bytes`` (in use,
    both) and ``malloc_free_bytes`` (free but kept), ``malloc_top_bytes`` (of it, the heap's free end), all of the
    main arena; and over every arena, :func:`malloc_info_books`' (where the free part is, by hole size). Held less
    in use is what the allocators keep: when that grows and in use does not, RSS grows by retention or
    fragmentation, not by live objects."""
    found = pymalloc_books(_debugmallocstats())
    info = _mallinfo2()
    if info is not None:
        found.update(malloc_heap_bytes=info.arena, malloc_mmap_bytes=info.hblkhd,
                     malloc_used_bytes=info.uordblks + info.hblkhd, malloc_free_bytes=info.fordblks,
                     malloc_top_bytes=info.keepcost)
        report = _malloc_info()
        if report is not None:
            found.update(malloc_info_books(report))
    return found
