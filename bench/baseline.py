"""The seed-004 baseline: a sequential orchestrator. One request awaits reserve, tax, shipping,
authorize, commit and capture in turn — no Kafka, no parallel steps — on the same adapters
(bench.services, same simulated latency), measured with the same closed and open loops."""

from __future__ import annotations

import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from bench.engine import Latency, percentile
from bench.services import bench_services, start_command
from events import messages as m
from saga.ids import idempotency_key


def checkout_sequentially(services: dict, checkout_id: str) -> int:
    """What a synchronous checkout endpoint does; returns the captured total."""
    start = start_command(checkout_id)
    key = lambda step: idempotency_key(checkout_id, step, 1)  # noqa: E731
    reserved = services["inventory"](
        m.ReserveInventory(checkout_id, 1, key(m.Step.RESERVE_INVENTORY), start.items, 0)
    )
    tax = services["tax"](
        m.CalculateTax(
            checkout_id,
            1,
            key(m.Step.CALCULATE_TAX),
            start.currency,
            start.items,
            start.shipping_address,
        )
    )
    ship = services["shipping"](
        m.QuoteShipping(
            checkout_id,
            1,
            key(m.Step.QUOTE_SHIPPING),
            start.currency,
            start.items,
            start.shipping_address,
        )
    )
    total = sum(i.quantity * i.unit_amount for i in start.items) + tax.amount + ship.amount
    auth = services["payment"](
        m.AuthorizePayment(
            checkout_id,
            1,
            key(m.Step.AUTHORIZE_PAYMENT),
            "stripe",
            start.payment_method,
            start.customer_id,
            total,
            start.currency,
        )
    )
    services["inventory"](
        m.CommitInventory(checkout_id, 1, key(m.Step.COMMIT_INVENTORY), reserved.reservation_id)
    )
    captured = services["payment"](
        m.CapturePayment(
            checkout_id,
            1,
            key(m.Step.CAPTURE_PAYMENT),
            "stripe",
            auth.payment_id,
            total,
            start.currency,
        )
    )
    return int(captured.amount)


@dataclass(frozen=True)
class BaselineSaturation:
    completed_per_s: float
    completed: int


def closed_loop(latency_s: float, *, window: int, seconds: float) -> BaselineSaturation:
    services = bench_services(latency_s)
    done = 0
    lock = threading.Lock()
    end = time.monotonic() + seconds

    def client() -> None:
        nonlocal done
        while time.monotonic() < end:
            checkout_sequentially(services, f"base-{uuid.uuid4().hex[:12]}")
            with lock:
                done += 1

    began = time.monotonic()
    with ThreadPoolExecutor(window) as pool:
        for _ in range(window):
            pool.submit(client)
    return BaselineSaturation(done / (time.monotonic() - began), done)


def open_loop(
    latency_s: float, *, rate: float, seconds: float, max_concurrency: int = 512
) -> Latency:
    services = bench_services(latency_s)
    latencies: list[float] = []
    lock = threading.Lock()

    def one(scheduled: float) -> None:
        checkout_sequentially(services, f"base-{uuid.uuid4().hex[:12]}")
        with lock:
            latencies.append((time.monotonic() - scheduled) * 1000)

    n = int(rate * seconds)
    began = time.monotonic()
    with ThreadPoolExecutor(max_concurrency) as pool:
        for i in range(n):
            target = began + i / rate
            delay = target - time.monotonic()
            if delay > 0:
                time.sleep(delay)  # the arrival schedule itself
            pool.submit(one, target)
    latencies.sort()
    return Latency(
        rate,
        len(latencies),
        n - len(latencies),
        percentile(latencies, 50),
        percentile(latencies, 95),
        percentile(latencies, 99),
    )
