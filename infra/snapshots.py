"""checkout.snapshots records, and the in-memory index of evicted (terminal) sagas.

A record's value is `kind (1 byte) + fingerprint (16 ascii) + body`:
- `L` a live saga, `T` a terminal one (no wakeup, nothing to compensate): body is
  `last_event_message_id + "\\n" + state JSON` (saga/snapshot.py). The kind byte lets a rebuild
  index a terminal saga without decoding it.
- `P` a pointer: the saga is terminal and its final snapshot is the record at `offset` of the
  same partition of checkout.snapshots.final. Written in the transaction after the final
  snapshot (whose offset the delivery report gave); until then the `T` record stands. A rebuild
  reads ~40 bytes for each terminal saga instead of its whole state.
- `C` the partition's coverage marker (key `COVERAGE_KEY`, explicit partition): written once a
  full refold has written a snapshot of every saga of the partition with this fingerprint. A
  partition without a matching marker is refolded from checkout.events.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np

from saga.snapshot import decode_state, encode_state, fingerprint
from saga.state import SagaState

LIVE = ord("L")
TERMINAL = ord("T")
POINTER = ord("P")
COVERAGE = ord("C")
COVERAGE_KEY = b"\x00coverage"
_FP = slice(1, 17)


def current_fingerprint() -> bytes:
    return fingerprint().encode()


def encode_snapshot(state: SagaState, last_event_id: str, *, terminal: bool) -> bytes:
    kind = b"T" if terminal else b"L"
    return kind + current_fingerprint() + last_event_id.encode() + b"\n" + encode_state(state)


@dataclass(frozen=True, slots=True)
class Snapshot:
    state: SagaState
    last_event_id: str


def fingerprint_matches(value: bytes) -> bool:
    return value[_FP] == current_fingerprint()


def decode_snapshot(value: bytes) -> Snapshot:
    """Raises ValueError (SnapshotMismatch) when the record is not a snapshot of today's shape."""
    if not value or value[0] not in (LIVE, TERMINAL) or not fingerprint_matches(value):
        raise ValueError("not a snapshot of this code's state shape")
    last, _, body = value[17:].partition(b"\n")
    return Snapshot(decode_state(body), last.decode())


def encode_pointer(offset: int) -> bytes:
    return b"P" + current_fingerprint() + str(offset).encode()


def pointer_offset(value: bytes) -> int:
    return int(value[17:])


def encode_coverage(events_topic: str, events_end: int) -> bytes:
    body = {"events_topic": events_topic, "events_end": events_end}
    return b"C" + current_fingerprint() + json.dumps(body).encode()


def coverage_end(value: bytes) -> int:
    """The events offset below which the marker says every event is in a snapshot."""
    return int(json.loads(value[17:]).get("events_end", 0))


def coverage_matches(value: bytes, events_topic: str) -> bool:
    """A marker of today's shape, for snapshots of `events_topic` (not of another log)."""
    if not value or value[0] != COVERAGE or not fingerprint_matches(value):
        return False
    try:
        return bool(json.loads(value[17:]).get("events_topic") == events_topic)
    except ValueError:
        return False


def key_hash(key: bytes) -> int:
    """64 bits of the key (Python's hash is per process, which is all an in-memory index needs).
    A collision is caught on reload: the record read names another key."""
    return hash(key) & 0xFFFF_FFFF_FFFF_FFFF


class EvictedIndex:
    """checkout → offset of its latest snapshot, for the terminal sagas of one partition.

    16 bytes per saga in two sorted numpy arrays (a dict of str → int costs ~150 bytes an entry),
    plus a small dict of the sagas evicted since the arrays were built, merged when it grows."""

    MERGE_AT = 4096

    def __init__(self) -> None:
        self._keys = np.empty(0, dtype=np.uint64)
        self._offsets = np.empty(0, dtype=np.int64)
        self._recent: dict[int, int] = {}  # key hash -> offset; -1: no longer evicted

    def __len__(self) -> int:
        count = len(self._keys)
        for h, offset in self._recent.items():
            in_arrays = self._in_arrays(h)
            count += (offset >= 0 and not in_arrays) - (offset < 0 and in_arrays)
        return count

    def _in_arrays(self, h: int) -> bool:
        i = int(np.searchsorted(self._keys, np.uint64(h)))
        return i < len(self._keys) and int(self._keys[i]) == h

    @classmethod
    def build(cls, hashes: np.ndarray, offsets: np.ndarray) -> EvictedIndex:
        """From (hash, offset) pairs in log order; the last pair of a key wins."""
        index = cls()
        if len(hashes):
            reverse_keys = hashes[::-1]
            keys, first = np.unique(reverse_keys, return_index=True)  # sorted, last in log order
            index._keys = keys.astype(np.uint64)
            index._offsets = offsets[::-1][first].astype(np.int64)
        return index

    def get(self, key: bytes) -> int | None:
        h = key_hash(key)
        if h in self._recent:
            found = self._recent[h]
            return found if found >= 0 else None
        i = int(np.searchsorted(self._keys, np.uint64(h)))
        if i < len(self._keys) and int(self._keys[i]) == h:
            return int(self._offsets[i])
        return None

    def put(self, key: bytes, offset: int) -> None:
        self._recent[key_hash(key)] = offset
        if len(self._recent) >= self.MERGE_AT:
            self._merge()

    def discard(self, key: bytes) -> None:
        if self.get(key) is not None:
            self._recent[key_hash(key)] = -1

    def nbytes(self) -> int:
        return int(self._keys.nbytes + self._offsets.nbytes) + 100 * len(self._recent)

    def _merge(self) -> None:
        recent = np.fromiter(self._recent.keys(), dtype=np.uint64, count=len(self._recent))
        offsets = np.fromiter(self._recent.values(), dtype=np.int64, count=len(self._recent))
        keys = np.concatenate([self._keys, recent])
        offs = np.concatenate([self._offsets, offsets])
        merged = EvictedIndex.build(keys, offs)
        alive = merged._offsets >= 0
        self._keys, self._offsets = merged._keys[alive], merged._offsets[alive]
        self._recent = {}
