"""Prometheus metrics of a worker process: one registry per process, built by the composition
root (never at import) and handed to the processor, its handler and the breaker watcher.

Label cardinality is bounded by construction (docs/decisions/0016-observability.md): labels are
processor names, topics, partitions, breaker/integration names, saga steps, reply types and
short reason codes — never a checkout id, an amount or an error's free text.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import pybreaker
from confluent_kafka import Consumer, KafkaException, Message, TopicPartition
from prometheus_client import (
    GC_COLLECTOR,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    ProcessCollector,
    start_http_server,
)

from adapters.resilience import on_new_breaker

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
BATCH_BUCKETS = (1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 5000)
# pybreaker's state names -> the gauge's value (the dashboard maps them back)
BREAKER_STATES = {"closed": 0, "half-open": 1, "open": 2}
# Consumer lag is sampled, not measured per batch: position and the cached high watermark are
# local calls, but the gauge only has to be as fresh as a scrape interval.
LAG_EVERY_S = 5.0


class Metrics:
    """Every metric family a worker process exports, on one registry."""

    def __init__(self, registry: CollectorRegistry | None = None, *, process: bool = False) -> None:
        """`process`: also the process's CPU, memory, open files and GC (the served registry
        of a worker; tests building many registries leave them out)."""
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        if process:
            add_process_collectors(r)
        self.inputs = Counter(
            "processor_inputs_total",
            "Records polled by a processor, by input topic",
            ["processor", "topic"],
            registry=r,
        )
        self.batch_size = Histogram(
            "processor_batch_size",
            "Records per polled batch",
            ["processor"],
            buckets=BATCH_BUCKETS,
            registry=r,
        )
        self.handle_seconds = Histogram(
            "processor_handle_seconds",
            "Time to decode and handle one batch",
            ["processor"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.commit_seconds = Histogram(
            "processor_commit_seconds",
            "Time to produce a batch's outputs and commit its transaction",
            ["processor"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.dlq_records = Counter(
            "processor_dlq_records_total",
            "Records dead-lettered, by input topic and reason code",
            ["processor", "topic", "reason"],
            registry=r,
        )
        self.consumer_lag = Gauge(
            "processor_consumer_lag",
            "High watermark minus position, per assigned partition",
            ["processor", "topic", "partition"],
            registry=r,
        )
        self.saga_outcomes = Counter(
            "saga_outcomes_total",
            "Sagas ended (completed, failed, cancelled) or parked, by step and reason code",
            ["outcome", "step", "reason"],
            registry=r,
        )
        self.adapter_replies = Counter(
            "adapter_replies_total",
            "Replies an adapter processor sent, by reply type and ok/failed",
            ["adapter", "reply", "outcome"],
            registry=r,
        )
        self.adapter_fallbacks = Counter(
            "adapter_fallbacks_total",
            "Answers from a fallback (tax rate table, flat-rate shipping) instead of a provider",
            ["adapter"],
            registry=r,
        )
        self.breaker_state = Gauge(
            "breaker_state",
            "Circuit breaker state: 0 closed, 1 half-open, 2 open",
            ["breaker"],
            registry=r,
        )
        self.integration_calls = Counter(
            "integration_calls_total",
            "Calls through a provider's breaker: success (it answered, a business refusal"
            " included) or failure (error, timeout)",
            ["integration", "outcome"],
            registry=r,
        )

    def processor(self, name: str, *, lag_every_s: float = LAG_EVERY_S) -> ProcessorMetrics:
        return ProcessorMetrics(self, name, lag_every_s)


def add_process_collectors(registry: CollectorRegistry) -> None:
    ProcessCollector(registry=registry)
    registry.register(GC_COLLECTOR)


def dlq_reason(error: str) -> str:
    """A short code for the dead-letter error the processor writes into the record's header."""
    if error.startswith("DecodeError"):
        return "undecodable"
    if error.startswith("WrongTopic"):
        return "wrong_topic"
    if "(not retried)" in error:
        return "permanent"
    if " after " in error and " attempts" in error:
        return "retries_exhausted"
    return "other"


class ProcessorMetrics:
    """The processor loop's metrics, bound to its name. All calls are cheap and lock-free
    beyond prometheus_client's own."""

    def __init__(self, metrics: Metrics, processor: str, lag_every_s: float = LAG_EVERY_S) -> None:
        self.metrics = metrics
        self._lag_every_s = lag_every_s
        self._name = processor
        self._handle = metrics.handle_seconds.labels(processor)
        self._commit = metrics.commit_seconds.labels(processor)
        self._batch = metrics.batch_size.labels(processor)
        self._lag_at = 0.0

    def polled(self, records: Sequence[Message]) -> None:
        if not records:
            return
        self._batch.observe(len(records))
        by_topic: dict[str, int] = {}
        for record in records:
            topic = record.topic() or ""
            by_topic[topic] = by_topic.get(topic, 0) + 1
        for topic, n in by_topic.items():
            self.metrics.inputs.labels(self._name, topic).inc(n)

    def handled(self, seconds: float) -> None:
        self._handle.observe(seconds)

    def committed(self, seconds: float) -> None:
        self._commit.observe(seconds)

    def dead_lettered(self, topic: str, error: str) -> None:
        self.metrics.dlq_records.labels(self._name, topic, dlq_reason(error)).inc()

    def sample_lag(self, consumer: Consumer, assigned: Sequence[TopicPartition]) -> None:
        now = time.monotonic()
        if not assigned or now - self._lag_at < self._lag_every_s:
            return
        self._lag_at = now
        try:
            positions = consumer.position(list(assigned))
        except KafkaException:
            return  # next time
        for tp in positions:
            if tp.offset < 0:
                continue  # nothing consumed yet: no position to measure from
            try:
                _, high = consumer.get_watermark_offsets(tp, cached=True)
            except KafkaException:
                continue
            if high < 0:
                continue
            self.metrics.consumer_lag.labels(self._name, tp.topic, str(tp.partition)).set(
                max(0, high - tp.offset)
            )

    def forget(self, partitions: Sequence[TopicPartition]) -> None:
        """A revoked partition's lag is another instance's to report."""
        for tp in partitions:
            try:
                self.metrics.consumer_lag.remove(self._name, tp.topic, str(tp.partition))
            except KeyError:
                continue


class BreakerMetrics(pybreaker.CircuitBreakerListener):
    """Mirrors every breaker's state into `breaker_state` and counts the calls through it.
    pybreaker reports a business refusal (an excluded exception) as a success: the provider
    answered, which is what integration success measures."""

    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics

    def watch(self, breaker: pybreaker.CircuitBreaker) -> None:
        if self not in breaker.listeners:
            breaker.add_listener(self)
        self._set(breaker, breaker.current_state)

    def state_change(
        self,
        cb: pybreaker.CircuitBreaker,
        old_state: pybreaker.CircuitBreakerState | None,
        new_state: pybreaker.CircuitBreakerState,
    ) -> None:
        self._set(cb, new_state.name)

    def success(self, cb: pybreaker.CircuitBreaker) -> None:
        self._metrics.integration_calls.labels(str(cb.name), "success").inc()

    def failure(self, cb: pybreaker.CircuitBreaker, exc: BaseException) -> None:
        self._metrics.integration_calls.labels(str(cb.name), "failure").inc()

    def _set(self, breaker: pybreaker.CircuitBreaker, state: str) -> None:
        self._metrics.breaker_state.labels(str(breaker.name)).set(BREAKER_STATES.get(state, 2))


def watch_breakers(metrics: Metrics) -> Callable[[], None]:
    """Watch every breaker of this process (through the same hook the Redis publisher uses);
    returns the function that stops watching new ones."""
    return on_new_breaker(BreakerMetrics(metrics).watch)


@dataclass
class MetricsServer:
    host: str
    port: int
    _server: Any

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/metrics"

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def serve_metrics(metrics: Metrics, host: str, port: int) -> MetricsServer:
    """/metrics of `metrics.registry` on host:port (0: a free port) from a daemon thread."""
    server, _thread = start_http_server(port, addr=host, registry=metrics.registry)
    return MetricsServer(host, int(server.server_port), server)
