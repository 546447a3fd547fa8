"""Processor metrics on the real broker, scraped over HTTP as Prometheus would: a processor run
with METRICS_PORT=0 counts its inputs, batch sizes, handle and commit latencies, dead letters
and consumer lag; `saga worker` serves them and logs JSON lines."""

from __future__ import annotations

import dataclasses
import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from events import messages as m
from events.envelope import Envelope
from events.serde import make_serde
from events.topics import CHECKOUT_COMMANDS
from infra.embedded.stack import RunningStack
from infra.metrics import Metrics, serve_metrics
from infra.processor import Incoming, Output, Processor, ProcessorConfig
from infra.settings import child_environ, to_environ
from infra.topics import ensure_topics
from infra.workers.adapter import AdapterHandler
from tests.integration.kafka_helpers import fresh_topics, produce, produce_raw

pytestmark = pytest.mark.integration
SERDE = make_serde(None)
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(url: str) -> Samples:
    response = httpx.get(url, timeout=5)
    response.raise_for_status()
    assert response.headers["content-type"].startswith("text/plain")
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(response.text)
        for s in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float | None:
    return samples.get((name, frozenset(labels.items())))


def poll(what: str, check: Callable[[], Any], timeout_s: float = 60) -> Any:
    deadline = time.monotonic() + timeout_s
    while not (result := check()):
        assert time.monotonic() < deadline, f"not within {timeout_s}s: {what}"
    return result


def tax_request(checkout_id: str) -> Envelope[m.CalculateTax]:
    command = m.CalculateTax(
        checkout_id, 1, f"{checkout_id}:tax:1", "USD", (m.LineItem("sku-1", 1, 1000),),
        m.Address("1 Main St", "Springfield", "IL", "62701", "US"),
    )  # fmt: skip
    return Envelope.new(command, occurred_at=1_000, producer="test")


def quote(command: m.CalculateTax) -> m.TaxCalculated:
    # Every other checkout answered from the fallback rates, as when TaxJar is down.
    source = "rate_table_fallback" if command.checkout_id.endswith(("0", "2", "4")) else "taxjar"
    return m.TaxCalculated(command.checkout_id, command.attempt, 80, "USD", source)


class TaxAdapter(AdapterHandler):
    """The real adapter handler, its replies sent to this test's own topic (the shared
    checkout.replies would hand an orchestrator replies for checkouts it never started)."""

    def __init__(self, replies: str, metrics: Metrics) -> None:
        super().__init__("tax", quote, metrics=metrics)
        self._replies = replies

    def handle(self, message: Incoming) -> Sequence[Output]:
        return [dataclasses.replace(o, topic=self._replies) for o in super().handle(message)]


def test_a_processor_on_metrics_port_0_exports_what_it_did(stack: RunningStack) -> None:
    settings = dataclasses.replace(stack.settings, metrics_port=0)
    bootstrap = settings.kafka_bootstrap_servers
    assert bootstrap and settings.metrics_port == 0
    requests, replies = fresh_topics(bootstrap, "adapter.tax.requests", "checkout.replies")
    metrics = Metrics()
    server = serve_metrics(metrics, settings.metrics_host, settings.metrics_port)
    assert server.port != 0 and server.host == "127.0.0.1"
    name = f"adapter-tax-{uuid.uuid4().hex[:6]}"
    handler = TaxAdapter(replies, metrics)
    config = ProcessorConfig(
        name=name,
        topics=[requests],
        bootstrap_servers=bootstrap,
        batch_size=7,
        isolation_level=settings.kafka_isolation_level,
    )
    processor = Processor(config, handler, SERDE, metrics=metrics.processor(name, lag_every_s=0))
    before = scrape(server.url)
    assert value(before, "processor_inputs_total", processor=name, topic=requests) is None

    run = uuid.uuid4().hex[:6]
    produce(bootstrap, requests, SERDE, [tax_request(f"co-{run}-{i}") for i in range(20)])
    produce_raw(bootstrap, requests, b"co-poison", b"\x00 not a message")
    processor.start()
    try:
        # Keep polling until everything is committed and every partition's lag was sampled.
        def done() -> Samples | None:
            processor.step()
            samples = scrape(server.url)
            lags = [k for k in samples if k[0] == "processor_consumer_lag"]
            return samples if processor.processed == 21 and len(lags) == 3 else None

        samples = poll("21 inputs committed and lag sampled on 3 partitions", done)
    finally:
        processor.close()
        server.close()
    assert value(samples, "processor_inputs_total", processor=name, topic=requests) == 21
    labels = {"processor": name}
    assert value(samples, "processor_batch_size_sum", **labels) == 21
    batches = value(samples, "processor_batch_size_count", **labels)
    assert batches is not None and batches >= 3  # at most 7 per batch
    handled = value(samples, "processor_handle_seconds_count", **labels)
    committed = value(samples, "processor_commit_seconds_count", **labels)
    assert handled is not None and handled >= 3
    assert committed is not None and committed >= 3
    assert (value(samples, "processor_commit_seconds_sum", **labels) or 0) > 0
    dlq = {"processor": name, "topic": requests, "reason": "undecodable"}
    assert value(samples, "processor_dlq_records_total", **dlq) == 1
    ok = {"adapter": "tax", "reply": "TaxCalculated", "outcome": "ok"}
    assert value(samples, "adapter_replies_total", **ok) == 20
    assert value(samples, "adapter_fallbacks_total", adapter="tax") == 6  # ids ending 0, 2, 4
    lags = {k: v for k, v in samples.items() if k[0] == "processor_consumer_lag"}
    assert {dict(k[1])["topic"] for k in lags} == {requests}
    assert all(v == 0 for v in lags.values()), lags  # all consumed


@pytest.fixture
def worker(stack: RunningStack) -> Iterator[subprocess.Popen[bytes]]:
    settings = stack.settings
    assert settings.kafka_bootstrap_servers
    ensure_topics(settings.kafka_bootstrap_servers, settings.partitions)
    env = child_environ(
        {**to_environ(settings), "METRICS_PORT": "0", "LOG_FORMAT": "json", "LOG_LEVEL": "INFO"}
    )
    argv = [sys.executable, "-m", "infra.cli", "worker", "--role", "orchestrator"]
    argv += ["--instance", f"metrics-{os.getpid()}"]
    proc = subprocess.Popen(argv, env=env, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL)
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)


def lines_of(proc: subprocess.Popen[bytes]) -> queue.Queue[bytes]:
    """The process's stderr lines, drained on a thread so a full pipe never blocks it."""
    assert proc.stderr is not None
    stream = proc.stderr
    out: queue.Queue[bytes] = queue.Queue()

    def drain() -> None:
        for raw in iter(stream.readline, b""):
            out.put(raw)
        out.put(b"")  # end of output

    threading.Thread(target=drain, daemon=True).start()
    return out


def test_saga_worker_serves_metrics_and_logs_json(worker: subprocess.Popen[bytes]) -> None:
    lines = lines_of(worker)
    url = None
    deadline = time.monotonic() + 60
    while url is None:
        remaining = deadline - time.monotonic()
        assert remaining > 0, "no metrics line logged"
        raw = lines.get(timeout=remaining)
        assert raw, f"worker exited ({worker.poll()}) before logging its metrics address"
        line = json.loads(raw)  # every line is one JSON object
        assert {"event", "level", "logger", "timestamp"} <= set(line)
        url = line.get("metrics_url")
    assert url.startswith("http://127.0.0.1:") and not url.startswith("http://127.0.0.1:0/")

    # The orchestrator's ticks go through checkout.commands: its inputs move on their own.
    def ticking() -> float | None:
        samples = scrape(url)
        moved = value(samples, "processor_inputs_total", processor="orchestrator",
                      topic=CHECKOUT_COMMANDS)  # fmt: skip
        handled = value(samples, "processor_handle_seconds_count", processor="orchestrator")
        return moved if moved and handled else None

    assert poll("orchestrator inputs counted", ticking, timeout_s=90) > 0
    memory = value(scrape(url), "process_resident_memory_bytes")
    assert memory is not None and memory > 0
