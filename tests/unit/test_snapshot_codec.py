"""Snapshot encoding and fingerprint, derived from the SagaState dataclass tree (pure)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from bench.histories import Kind, build
from infra.snapshots import (
    EvictedIndex,
    decode_snapshot,
    encode_snapshot,
    fingerprint_matches,
    key_hash,
)
from saga import snapshot as codec
from saga.checkout import fold
from saga.snapshot import SnapshotMismatch, decode_state, encode_state, fingerprint


@pytest.mark.parametrize("kind", list(Kind))
def test_every_state_along_a_history_round_trips(kind: Kind) -> None:
    built = build(f"co-{kind}", kind)
    for state in built.snapshots:
        assert decode_state(encode_state(state)) == state
    assert fold(built.events) == built.state


def test_the_fingerprint_follows_the_shape_of_the_state_tree(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    before = fingerprint()
    assert fingerprint() == before  # stable within one code version

    @dataclasses.dataclass(frozen=True)
    class Changed:
        checkout_id: str
        renamed: int

    fingerprint.cache_clear()
    monkeypatch.setattr(codec, "SagaState", Changed)
    try:
        assert fingerprint() != before
    finally:
        monkeypatch.undo()
        fingerprint.cache_clear()
    monkeypatch.setattr(codec, "SNAPSHOT_VERSION", codec.SNAPSHOT_VERSION + 1)
    try:
        assert fingerprint() != before
    finally:
        monkeypatch.undo()
        fingerprint.cache_clear()
    assert fingerprint() == before


def test_a_snapshot_of_another_shape_is_refused() -> None:
    state = build("co-x", Kind.COMPLETED).state
    value = encode_snapshot(state, "evt-9", terminal=True)
    assert decode_snapshot(value).state == state
    assert decode_snapshot(value).last_event_id == "evt-9"
    foreign = value[:1] + b"0" * 16 + value[17:]
    assert not fingerprint_matches(foreign)
    with pytest.raises(ValueError):
        decode_snapshot(foreign)
    with pytest.raises(SnapshotMismatch):
        decode_state(b'["co-x","PENDING"]')


def test_the_evicted_index_keeps_the_last_offset_of_each_key_and_forgets_reopened_ones() -> None:
    keys = [f"co-{i}".encode() for i in range(10_000)]
    hashes = np.array([key_hash(k) for k in keys] + [key_hash(keys[0])], dtype=np.uint64)
    offsets = np.array([*range(10_000), 99_999], dtype=np.int64)
    index = EvictedIndex.build(hashes, offsets)
    assert index.get(keys[0]) == 99_999  # the later record of the key wins
    assert index.get(keys[1234]) == 1234
    assert index.get(b"co-unknown") is None
    index.put(b"co-new", 5)
    index.discard(keys[7])
    assert index.get(b"co-new") == 5 and index.get(keys[7]) is None
    assert len(index) == 10_000
    for i in range(EvictedIndex.MERGE_AT):  # forces a merge into the arrays
        index.put(f"co-more-{i}".encode(), 200_000 + i)
    assert index.get(keys[7]) is None and index.get(b"co-new") == 5
    assert index.get(b"co-more-17") == 200_017
    assert index.nbytes() <= 16 * len(index) + 1_000  # 16 bytes a saga, not a dict entry
