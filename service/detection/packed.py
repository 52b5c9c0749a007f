"""Snapshot bytes that their owner compressed and keeps: stored as they are, outside the snapshot's body.

A checkpoint re-encodes a partition's whole state; the quality joins, which fill over the labels'
horizon (up to ``label_max_pending`` entries each), were most of it, and most of a join does not
change between two checkpoints. A join therefore keeps its entries encoded in compressed chunks and
re-encodes only the chunks that changed (``quality._Pending``); :class:`Packed` marks those chunks so
that :mod:`modelmedic.detection.snapshots` does not compress them again with the rest of the body
(which would cost as much as encoding them did).
"""

from __future__ import annotations

import zlib

MAX_INFLATED_BYTES = 64 * 1024 * 1024
"""Largest chunk :func:`inflate` accepts: a small record must not inflate to fill the memory."""


class Packed(bytes):
    """zlib-compressed bytes a snapshot carries verbatim (the envelope's ``blobs``, covered by its MAC)."""

    __slots__ = ()


def deflate(raw: bytes) -> Packed:
    """``raw`` compressed as a snapshot body is (zlib level 1: a checkpoint is on the event loop)."""
    return Packed(zlib.compress(raw, 1))


def inflate(blob: bytes) -> bytes:
    """What :func:`deflate` was given; :class:`ValueError` when it inflates past :data:`MAX_INFLATED_BYTES`."""
    inflater = zlib.decompressobj()
    raw = inflater.decompress(blob, MAX_INFLATED_BYTES)
    if inflater.unconsumed_tail:
        raise ValueError(f"a packed chunk inflates to more than {MAX_INFLATED_BYTES} bytes")
    return raw
