"""Partition snapshots as data, never code: the detection plane's state-topic format.

Anyone who can write one record to the state topic could, with pickle, run code in the
service (and so read its Kafka credentials and its Kubernetes token). A snapshot here is a
msgpack document of plain values only, inside a versioned envelope:

    [FORMAT, VERSION, mac, zlib(msgpack(tree)), [blob, ...]]

The tree holds msgpack's own types (None, bool, int, float, str, bytes, str-keyed maps)
and tagged lists for everything else, so nothing in it names a callable to call:

| node                         | encoded as                                             |
|------------------------------|--------------------------------------------------------|
| list / tuple / set           | ``[LIST|TUPLE|SET, *items]``                           |
| dict with a non-str key      | ``[DICT, k1, v1, k2, v2 ...]`` (``ODICT``: OrderedDict) |
| numpy array                  | ``[ARRAY, dtype, shape, bytes]``, dtype from an allow-list |
| numpy scalar                 | ``[SCALAR, dtype, bytes]``                             |
| object of an allowed class   | ``[OBJECT, "module.Class", {attribute: value}]``       |
| ``time.time`` (a clock)      | ``[FUNCTION, "time.time"]``                            |
| :class:`~modelmedic.detection.packed.Packed` | ``[BLOB, i]``: the envelope's i-th blob, verbatim |

Packed bytes are data their owner compressed already and keeps between checkpoints (the quality
joins' chunks, most of a busy partition's state): they travel beside the compressed body, not in
it, so a checkpoint does not compress them again (``detection/packed.py``).

An object is rebuilt with ``cls.__new__(cls)`` and its attributes (``__setstate__`` where
the class defines one): no constructor, no ``__reduce__``, no import by name. The
allowed classes are the ones defined in :data:`ALLOWED_MODULES` (the windows, the
quality and input monitors and their detectors).

With ``detection.snapshot_key`` set, every snapshot carries an HMAC-SHA256 of its
version, body and blobs, and one without a valid MAC is rejected: the state topic's writers
can then no longer even change the detection state. Without a key, snapshots are only
data (a forged one can change baselines, never run code).
"""

from __future__ import annotations

import hashlib
import hmac
import time
import zlib
from collections import OrderedDict
from typing import Any

import msgspec
import numpy as np

from modelmedic.detection import features as _features, quality as _quality, windows as _windows
from modelmedic.detection.packed import Packed
from modelmedic.detectors import data_quality as _detector_data_quality, drift as _detector_drift
from modelmedic.detectors import estimated as _detector_estimated, feature_drift as _detector_feature_drift
from modelmedic.detectors import quality as _detector_quality
from modelmedic.errors import SnapshotRejected

FORMAT = "modelmedic.snapshot"
VERSION = 5
"""Layout of the tree. 5 added the envelope's blobs; 4 (the same tree, no blobs) is still read. 2 was a
pickle (no longer read: such a snapshot is rejected and the partition starts afresh); a snapshot of
another layout is rejected the same way."""
READABLE = frozenset((4, VERSION))
MAX_BODY_BYTES = 512 * 1024 * 1024
"""Largest decompressed body accepted: a small record must not inflate to fill the memory."""

LIST, TUPLE, SET, DICT, ODICT, ARRAY, SCALAR, OBJECT, FUNCTION, BLOB = range(10)
ALLOWED_MODULES = (_windows, _quality, _detector_quality, _detector_drift, _detector_estimated, _features,
                   _detector_data_quality, _detector_feature_drift)
_CLASSES: dict[str, type] = {
    f"{cls.__module__}.{cls.__qualname__}": cls
    for module in ALLOWED_MODULES for cls in vars(module).values()
    if isinstance(cls, type) and cls.__module__ == module.__name__
}
_FUNCTIONS: dict[str, Any] = {"time.time": time.time}
_FUNCTION_NAMES = {id(f): name for name, f in _FUNCTIONS.items()}
_DTYPES = frozenset(np.dtype(t).str for t in (np.bool_, np.int8, np.int16, np.int32, np.int64, np.uint8, np.uint16,
                                              np.uint32, np.uint64, np.float32, np.float64))
_SCALARS = frozenset((type(None), bool, int, float, str, bytes))


class _Envelope(msgspec.Struct, array_like=True):
    format: str
    version: int
    mac: bytes
    body: bytes
    blobs: list[bytes] = []
    """:class:`Packed` values of the tree, in the order its ``[BLOB, i]`` nodes name them (none before v5)."""


def encode_snapshot(state: dict[str, Any], key: bytes | None = None) -> bytes:
    """The record value for ``state`` (signed when ``key`` is given).

    Raises :class:`TypeError` for a value that is not data (a bug in whoever added it to
    the detection state: give it a data form here or keep it out of the snapshot).
    """
    blobs: list[memoryview] = []
    body = zlib.compress(msgspec.msgpack.encode(_to_tree(state, blobs)), 1)
    return msgspec.msgpack.encode(_Envelope(FORMAT, VERSION, _mac(key, VERSION, body, blobs) if key else b"", body,
                                            blobs))


def decode_snapshot(blob: bytes, key: bytes | None = None) -> dict[str, Any]:
    """The state :func:`encode_snapshot` was given; :class:`SnapshotRejected` for anything else."""
    try:
        envelope = msgspec.msgpack.decode(blob, type=_Envelope)
    except Exception as exc:  # noqa: BLE001 - any undecodable record is rejected, whatever msgspec raises
        raise SnapshotRejected("format", f"not a modelmedic snapshot ({type(exc).__name__}: {exc})") from None
    if envelope.format != FORMAT or envelope.version not in READABLE:
        raise SnapshotRejected("version", f"snapshot layout {envelope.format!r} v{envelope.version} is not "
                                          f"{FORMAT!r} v{VERSION} (written by another release of modelmedic)")
    if key is not None and not hmac.compare_digest(envelope.mac, _mac(key, envelope.version, envelope.body,
                                                                      envelope.blobs)):
        raise SnapshotRejected("signature", "the snapshot's MAC does not match detection.snapshot_key: it was "
                                            "written without that key, or forged")
    inflate = zlib.decompressobj()
    try:
        raw = inflate.decompress(envelope.body, MAX_BODY_BYTES)
        if inflate.unconsumed_tail:
            raise SnapshotRejected("body", f"snapshot body inflates to more than {MAX_BODY_BYTES} bytes")
        state = _from_tree(msgspec.msgpack.decode(raw), envelope.blobs)
    except SnapshotRejected:
        raise
    except Exception as exc:  # noqa: BLE001 - as above: a bad body is rejected, never raised into the plane
        raise SnapshotRejected("body", f"undecodable snapshot body ({type(exc).__name__}: {exc})") from None
    if not isinstance(state, dict) or not all(isinstance(k, str) for k in state):
        raise SnapshotRejected("body", f"snapshot body is a {type(state).__name__}, not a map of fields")
    return state


def _mac(key: bytes, version: int, body: bytes, blobs: list[bytes] | list[memoryview]) -> bytes:
    """The HMAC of a snapshot's layout, body and blobs (each blob's length first: no two splits of the same
    bytes sign alike); a v4 snapshot's, which has none, as v4 wrote it."""
    mac = hmac.new(key, f"{FORMAT}:{version}:".encode() + body, hashlib.sha256)
    for blob in blobs:
        mac.update(len(blob).to_bytes(8, "big"))
        mac.update(blob)
    return mac.digest()


def _to_tree(value: Any, blobs: list[Any]) -> Any:
    """``value`` as msgpack-native data (the table in the module docstring); :class:`Packed` values are
    appended to ``blobs``."""
    kind = value.__class__
    if kind in _SCALARS:
        return value
    if kind is Packed:
        blobs.append(memoryview(value))  # written as bytes; msgspec takes no subclass of them
        return [BLOB, len(blobs) - 1]
    if kind is dict and all(k.__class__ is str for k in value):
        return {k: _to_tree(v, blobs) for k, v in value.items()}
    if kind is dict or kind is OrderedDict:
        flat: list[Any] = [ODICT if kind is OrderedDict else DICT]
        for k, v in value.items():
            flat += (_to_tree(k, blobs), _to_tree(v, blobs))
        return flat
    if kind is list or kind is tuple or kind is set or kind is frozenset:
        tag = LIST if kind is list else TUPLE if kind is tuple else SET
        if _SCALARS.issuperset(map(type, value)):  # the usual case: no per-item call
            return [tag, *value]
        return [tag, *(_to_tree(item, blobs) for item in value)]
    if isinstance(value, np.ndarray):
        return [ARRAY, _dtype(value.dtype), list(value.shape), np.ascontiguousarray(value).tobytes()]
    if isinstance(value, np.generic):
        return [SCALAR, _dtype(value.dtype), value.tobytes()]
    if id(value) in _FUNCTION_NAMES:
        return [FUNCTION, _FUNCTION_NAMES[id(value)]]
    name = f"{kind.__module__}.{kind.__qualname__}"
    if _CLASSES.get(name) is kind:
        return [OBJECT, name, {k: _to_tree(v, blobs) for k, v in (value.__getstate__() or {}).items()}]
    raise TypeError(f"{name} is not snapshot data: add it to detection/snapshots.py or keep it out of the snapshot")


def _dtype(dtype: np.dtype) -> str:
    if dtype.str not in _DTYPES:
        raise TypeError(f"numpy dtype {dtype} is not snapshot data (allowed: {sorted(_DTYPES)})")
    return dtype.str


def _from_tree(node: Any, blobs: list[bytes]) -> Any:
    """The value :func:`_to_tree` encoded (its ``blobs`` as :class:`Packed`); raises (anything) on a node it did
    not write."""
    if node.__class__ is dict:
        return {k: _from_tree(v, blobs) for k, v in node.items()}
    if node.__class__ is not list:
        return node
    tag = node[0]
    if tag in (LIST, TUPLE, SET):
        items = node[1:]
        if not _SCALARS.issuperset(map(type, items)):  # the usual case: all scalars, no per-item call
            items = [_from_tree(item, blobs) for item in items]
        return items if tag == LIST else tuple(items) if tag == TUPLE else set(items)
    if tag in (DICT, ODICT):
        flat = [_from_tree(item, blobs) for item in node[1:]]
        pairs = zip(flat[::2], flat[1::2], strict=True)
        return OrderedDict(pairs) if tag == ODICT else dict(pairs)
    if tag == ARRAY:
        _, dtype, shape, data = node
        return np.frombuffer(data, dtype=_allowed_dtype(dtype)).reshape(shape).copy()
    if tag == SCALAR:
        _, dtype, data = node
        return np.frombuffer(data, dtype=_allowed_dtype(dtype), count=1)[0]
    if tag == FUNCTION:
        return _FUNCTIONS[node[1]]
    if tag == BLOB:
        return Packed(blobs[node[1]])
    if tag == OBJECT:
        _, name, attributes = node
        cls = _CLASSES[name]
        obj = cls.__new__(cls)
        state = _from_tree(attributes, blobs)
        if "__setstate__" in vars(cls):
            obj.__setstate__(state)
        else:
            obj.__dict__.update(state)
        return obj
    raise ValueError(f"unknown snapshot node tag {tag!r}")


def _allowed_dtype(dtype: str) -> np.dtype:
    if dtype not in _DTYPES:
        raise ValueError(f"numpy dtype {dtype!r} is not allowed in a snapshot")
    return np.dtype(dtype)
