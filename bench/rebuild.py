"""Rebuild benchmark: partition rebuild time and orchestrator RSS after 10,000 and 100,000
checkouts of history, from snapshots (this design) and by full refold (the previous one).

    python -m bench.rebuild [--counts 10000,100000]

A fresh embedded Apache Kafka; topics of ONE partition, so every checkout of the history is on
the partition being rebuilt (with 6 partitions, 100k here stands for 600k in the cluster). The
history is pre-built by the saga's own `decide` with well-behaved adapters (bench/histories.py)
and produced straight onto checkout.events and checkout.snapshots — the engine is not driven
for 100k checkouts. Each measurement runs in a fresh process, so its RSS is the orchestrator's
own: that process builds an OrchestratorHandler, rebuilds partition 0 and reports.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

from confluent_kafka import Producer

from bench.histories import Built, Kind, build, mixed
from events.envelope import Envelope
from events.serde import make_serde
from events.topics import CHECKOUT_EVENTS, CHECKOUT_SNAPSHOTS, CHECKOUT_SNAPSHOTS_FINAL
from infra.processor import producer_config
from infra.snapshots import COVERAGE_KEY, encode_coverage, encode_pointer, encode_snapshot
from infra.workers.orchestrator import evictable

SERDE = make_serde(None)
ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
ID_WIDTH = 18  # every checkout id has this length, so templates can be re-keyed in place
TEMPLATE = "T" * ID_WIDTH


def checkout_id(i: int) -> str:
    return f"bench-{i:012d}"


class Templates:
    """Per kind: the encoded events and final snapshot of one checkout, re-keyed per checkout
    by replacing its id in the bytes (Avro strings keep their length, JSON has no lengths)."""

    def __init__(self) -> None:
        self.built: dict[Kind, Built] = {k: build(TEMPLATE, k) for k in Kind}
        self.events: dict[Kind, list[bytes]] = {}
        self.snapshot: dict[Kind, bytes] = {}
        for kind, b in self.built.items():
            envelopes = [
                Envelope.new(
                    e,
                    occurred_at=1_700_000_000_000 + j,
                    producer="bench",
                    message_id=f"{TEMPLATE}:{j:03d}",
                )
                for j, e in enumerate(b.events)
            ]
            self.events[kind] = [SERDE.encode(env, CHECKOUT_EVENTS) for env in envelopes]
            last = envelopes[-1].message_id
            self.snapshot[kind] = encode_snapshot(b.state, last, terminal=evictable(b.state))

    def rekey(self, data: bytes, cid: str) -> bytes:
        return data.replace(TEMPLATE.encode(), cid.encode())


class History:
    """Writes checkouts as the engine leaves them once the cleaner has compacted the snapshots:
    the events; for a live saga its last snapshot; for a terminal one its final snapshot on
    the final topic and a pointer to it (a one-partition topic written only here, so the
    final record's offset is its position)."""

    def __init__(self, bootstrap: str, templates: Templates) -> None:
        self.producer = Producer(
            producer_config(bootstrap, **{"linger.ms": 20, "batch.num.messages": 10000})
        )
        self.templates = templates
        self.written = 0
        self.finals = 0
        self.events = 0  # checkout.events offsets: one partition, written only here

    def write(self, count: int, live_every: int) -> Counter[Kind]:
        kinds: Counter[Kind] = Counter()
        t = self.templates
        for i, (_, kind) in enumerate(mixed("bench", count, live_every=live_every)):
            cid = checkout_id(self.written + i)
            key = cid.encode()
            kinds[kind] += 1
            for value in t.events[kind]:
                _produce(self.producer, CHECKOUT_EVENTS, key, t.rekey(value, cid))
            self.events += len(t.events[kind])
            snapshot = t.rekey(t.snapshot[kind], cid)
            if kind is Kind.LIVE:
                _produce(self.producer, CHECKOUT_SNAPSHOTS, key, snapshot)
            else:
                _produce(self.producer, CHECKOUT_SNAPSHOTS_FINAL, key, snapshot)
                _produce(self.producer, CHECKOUT_SNAPSHOTS, key, encode_pointer(self.finals))
                self.finals += 1
        self.written += count
        # As the orchestrator's marker refresh leaves it: every event below the end is in a
        # snapshot, so a rebuild reads no events.
        coverage = encode_coverage(CHECKOUT_EVENTS, self.events)
        _produce(self.producer, CHECKOUT_SNAPSHOTS, COVERAGE_KEY, coverage)
        assert self.producer.flush(120) == 0
        return kinds


def _produce(producer: Producer, topic: str, key: bytes, value: bytes) -> None:
    while True:
        try:
            producer.produce(topic, key=key, value=value, partition=0)
            return
        except BufferError:
            producer.poll(0.05)  # the local queue is full: let deliveries drain


def measure(bootstrap: str, mode: str, probe: str | None) -> dict[str, Any]:
    """Runs in a fresh process: rebuild partition 0 and report time and RSS."""
    from infra.workers.orchestrator import OrchestratorHandler

    before = _rss_kb()
    handler = OrchestratorHandler(bootstrap, SERDE, snapshots=(mode == "snapshots"))
    started = time.perf_counter()
    handler.rebuild_now([0])
    seconds = time.perf_counter() - started
    result: dict[str, Any] = {
        "mode": mode,
        "rebuild_s": round(seconds, 3),
        "rss_mb": round(_rss_kb() / 1024, 1),
        "rss_before_mb": round(before / 1024, 1),
        "in_memory": handler.in_memory(),
        "evicted": handler.evicted(),
        "refolded": handler.refolded,
        "index_kb": round(sum(i.nbytes() for i in handler._evicted.values()) / 1024, 1),
    }
    if probe and mode == "snapshots":
        started = time.perf_counter()
        state = handler.lookup(probe, 0)
        result["first_reload_ms"] = round((time.perf_counter() - started) * 1000, 2)
        result["reloaded_status"] = str(state.status) if state else None
        # Later reloads reuse the reader's connection: the steady-state cost of a late input.
        started = time.perf_counter()
        for i in range(1, 21):
            handler.lookup(probe.replace("000000000000", f"{i * 50:012d}"), 0)
        result["reload_ms"] = round((time.perf_counter() - started) * 1000 / 20, 2)
    handler.close()
    return result


def _rss_kb() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


REFOLD_LIMIT_S = 150  # the old design's refold at 100k would alone eat the run's time budget


def _measure_in_child(bootstrap: str, mode: str, probe: str) -> dict[str, Any]:
    try:
        return _child(bootstrap, mode, probe, REFOLD_LIMIT_S if mode == "refold" else None)
    except subprocess.TimeoutExpired:
        return {"mode": mode, "rebuild_s": None, "stopped_after_s": REFOLD_LIMIT_S}


def _child(bootstrap: str, mode: str, probe: str, limit: float | None) -> dict[str, Any]:
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench.rebuild",
            "--measure",
            bootstrap,
            "--mode",
            mode,
            "--probe",
            probe,
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=limit,
        cwd=ROOT,
    )
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def run(counts: list[int]) -> dict[str, Any]:
    from infra.embedded.stack import embedded_stack
    from infra.settings import load_settings
    from infra.topics import ensure_topics

    templates = Templates()
    per_checkout = _message_costs(templates)
    print(f"messages per checkout: {json.dumps(per_checkout)}")
    results: list[dict[str, Any]] = []
    with embedded_stack(load_settings({"SAGA_BROKER": "kafka"}), only=("kafka",)) as stack:
        bootstrap = stack.settings.kafka_bootstrap_servers
        assert bootstrap
        ensure_topics(
            bootstrap, 1, topics=(CHECKOUT_EVENTS, CHECKOUT_SNAPSHOTS, CHECKOUT_SNAPSHOTS_FINAL)
        )
        history = History(bootstrap, templates)
        for n, total in enumerate(counts):
            started = time.perf_counter()
            # Live sagas are the ones in flight: as many after 100k checkouts as after 10k.
            kinds = history.write(total - history.written, live_every=50 if n == 0 else 0)
            write_s = time.perf_counter() - started
            probe = checkout_id(0)  # a completed checkout: evicted, reloaded on demand
            fast = _measure_in_child(bootstrap, "snapshots", probe)
            full = _measure_in_child(bootstrap, "refold", probe)
            row = {
                "checkouts": total,
                "write_s": round(write_s, 1),
                "kinds_added": {str(k): v for k, v in kinds.items()},
                "snapshots": fast,
                "full_refold": full,
            }
            print(json.dumps(row))
            results.append(row)
    small, large = results[0], results[-1]
    summary = {
        "rebuild_s": [r["snapshots"]["rebuild_s"] for r in results],
        "rss_mb": [r["snapshots"]["rss_mb"] for r in results],
        "rss_ratio": round(large["snapshots"]["rss_mb"] / small["snapshots"]["rss_mb"], 3),
        "full_refold_s": [r["full_refold"]["rebuild_s"] for r in results],
        "full_refold_rss_mb": [r["full_refold"].get("rss_mb") for r in results],
        "full_refold_rss_ratio": (
            round(large["full_refold"]["rss_mb"] / small["full_refold"]["rss_mb"], 3)
            if large["full_refold"].get("rss_mb")
            else None
        ),
        "messages_per_checkout": per_checkout,
    }
    return {"runs": results, "summary": summary}


def _message_costs(templates: Templates) -> dict[str, float]:
    """Average over the benchmark's mix of kinds: what the orchestrator writes per checkout."""
    mix = Counter(kind for _, kind in mixed("x", 1000))
    total = sum(mix.values())

    def avg(f: Any) -> float:
        return round(sum(f(k) * n for k, n in mix.items()) / total, 2)

    return {
        "events": avg(lambda k: len(templates.built[k].events)),
        "orchestrator_outputs": avg(lambda k: templates.built[k].outputs),
        "snapshots": avg(lambda k: len(templates.built[k].snapshots)),
        # + the final snapshot and the pointer to it, once, when the saga ends
        "snapshot_records": avg(
            lambda k: len(templates.built[k].snapshots) + (0 if k is Kind.LIVE else 2)
        ),
        "snapshot_bytes": avg(lambda k: len(templates.snapshot[k])),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--counts", default="10000,100000")
    parser.add_argument("--measure")
    parser.add_argument("--mode", default="snapshots")
    parser.add_argument("--probe")
    args = parser.parse_args()
    if args.measure:
        print(json.dumps(measure(args.measure, args.mode, args.probe)))
        return
    report(run([int(c) for c in args.counts.split(",")]))


def report(results: dict[str, Any]) -> None:
    s = results["summary"]
    print()
    print(
        f"rebuild from snapshots: {s['rebuild_s']} s, RSS {s['rss_mb']} MB, ratio {s['rss_ratio']}"
    )
    print(
        f"full refold (previous design): {s['full_refold_s']} s, RSS {s['full_refold_rss_mb']} MB, "
        f"ratio {s['full_refold_rss_ratio']}"
    )
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "rebuild.json").write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
