"""One consumer-group member for the rebalance guarantee, run as its own process so it can be
SIGKILLed. Writes one JSON object per line to stdout: {"event": "ready"}, {"event": "assigned",
"partitions": [...]}, {"event": "revoked", ...}, {"event": "record", "partition", "offset",
"value"}. SIGTERM leaves the group cleanly.

    python group_member.py BOOTSTRAP TOPIC GROUP [--session-timeout-ms 6000] [--isolation ...]
"""

from __future__ import annotations

import argparse
import ctypes
import json
import signal
import sys
from typing import Any

from confluent_kafka import Consumer, TopicPartition

_PR_SET_PDEATHSIG = 1


def _emit(**event: Any) -> None:
    sys.stdout.write(json.dumps(event) + "\n")
    sys.stdout.flush()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("bootstrap")
    parser.add_argument("topic")
    parser.add_argument("group")
    parser.add_argument("--session-timeout-ms", type=int, default=6000)
    parser.add_argument("--isolation", default="read_committed")
    args = parser.parse_args(argv)

    # Never outlive the test that started us, even if it is SIGKILLed itself.
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    stopping = False

    def stop(signum: int, frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)

    consumer = Consumer(
        {
            "bootstrap.servers": args.bootstrap,
            "group.id": args.group,
            "session.timeout.ms": args.session_timeout_ms,
            "heartbeat.interval.ms": max(500, args.session_timeout_ms // 6),
            "partition.assignment.strategy": "range",  # as the engine's processors
            "auto.offset.reset": "earliest",
            "enable.auto.commit": True,
            "auto.commit.interval.ms": 500,
            "isolation.level": args.isolation,
            "fetch.wait.max.ms": 50,
        }
    )

    def assigned(c: Consumer, partitions: list[TopicPartition]) -> None:
        _emit(event="assigned", partitions=sorted(p.partition for p in partitions))

    def revoked(c: Consumer, partitions: list[TopicPartition]) -> None:
        _emit(event="revoked", partitions=sorted(p.partition for p in partitions))

    consumer.subscribe([args.topic], on_assign=assigned, on_revoke=revoked, on_lost=revoked)
    _emit(event="ready")
    try:
        while not stopping:
            for m in consumer.consume(100, 0.2):
                if m.error() is not None:
                    continue
                value = (m.value() or b"").decode()
                _emit(event="record", partition=m.partition(), offset=m.offset(), value=value)
    finally:
        consumer.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
