"""murmur2 as Kafka's Java client computes it (values from Kafka's UtilsTest.testMurmur2)."""

from __future__ import annotations

import pytest

from infra.partitioner import murmur2, partition_for

JAVA = {
    b"21": -973932308,
    b"foobar": -790332482,
    b"a-little-bit-long-string": -985981536,
    b"a-little-bit-longer-string": -1486304829,
    b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8": -58897971,
    b"abc": 479470107,
    b"1": -1993445489,
    b"12": 126087238,
    b"123": -267702483,
    b"1234": -1614185708,
    b"12345": -1188365604,
}


@pytest.mark.parametrize(("key", "expected"), sorted(JAVA.items()))
def test_murmur2_matches_the_java_client(key: bytes, expected: int) -> None:
    assert murmur2(key) == expected


def test_partition_is_the_positive_hash_modulo_the_partition_count() -> None:
    # toPositive(-973932308) = -973932308 & 0x7fffffff = 1173551340
    assert partition_for(b"21", 6) == 1173551340 % 6
    assert {partition_for(f"co-{i}".encode(), 6) for i in range(100)} == set(range(6))
