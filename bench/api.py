"""API benchmark: POST /v1/checkouts with concurrent clients against `saga api` in its own
process (so client and server do not share a GIL), on the same embedded stack."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
import uuid
from typing import Any

import httpx
import psycopg
from rich.console import Console

from bench.engine import percentile
from infra.embedded.process import free_port
from infra.settings import child_environ, to_environ

CLIENTS = 16
SECONDS = 15


def body() -> dict[str, Any]:
    return {
        "customer": {"id": "cus-bench", "email": "bench@example.com"},
        "currency": "USD",
        "items": [{"sku": "SKU-A", "quantity": 2, "unit_amount": 1999}],
        "shipping_address": {
            "line1": "1 Market St",
            "city": "San Francisco",
            "state": "CA",
            "postal_code": "94105",
            "country": "US",
        },
        "payment": {"provider": "stripe", "payment_method": "pm_card_visa"},
    }


def measure(settings: Any, console: Console) -> dict[str, Any]:
    from api.keys import create_api_key
    from db.migrate import upgrade

    upgrade(settings.database_url)
    with psycopg.connect(settings.database_url, autocommit=True) as conn:
        key = create_api_key(conn, "bench", f"bench-{uuid.uuid4().hex[:6]}")
    port = free_port()
    # Every URL and the stack's generated secrets, as `saga api` reads them.
    env = child_environ(
        {
            **to_environ(settings),
            "PYTHONPATH": os.getcwd(),
            "API_PORT": str(port),
            "RATE_LIMIT_PER_MINUTE": "1000000",  # measure the API, not the limiter's refusals
        }
    )
    server = subprocess.Popen(
        [sys.executable, "-m", "infra.cli", "api"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{base}/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline or server.poll() is not None:
                raise RuntimeError("saga api did not come up")
            time.sleep(0.1)
        return _load(base, key, console)
    finally:
        server.terminate()
        try:
            server.wait(20)
        except subprocess.TimeoutExpired:
            server.kill()


def _load(base: str, key: str, console: Console) -> dict[str, Any]:
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    lock = threading.Lock()
    end = time.monotonic() + SECONDS

    def client() -> None:
        with httpx.Client(base_url=base, timeout=30) as http:
            while time.monotonic() < end:
                headers = {"Authorization": f"Bearer {key}", "Idempotency-Key": uuid.uuid4().hex}
                t0 = time.perf_counter()
                r = http.post("/v1/checkouts", json=body(), headers=headers)
                elapsed = (time.perf_counter() - t0) * 1000
                with lock:
                    statuses[r.status_code] = statuses.get(r.status_code, 0) + 1
                    if r.status_code == 202:
                        latencies.append(elapsed)

    began = time.monotonic()
    threads = [threading.Thread(target=client) for _ in range(CLIENTS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    seconds = time.monotonic() - began
    latencies.sort()
    result = {
        "clients": CLIENTS,
        "seconds": seconds,
        "accepted": len(latencies),
        "statuses": {str(k): v for k, v in statuses.items()},
        "requests_per_s": len(latencies) / seconds,
        "p50_ms": percentile(latencies, 50),
        "p95_ms": percentile(latencies, 95),
        "p99_ms": percentile(latencies, 99),
    }
    console.print(
        f"  {result['requests_per_s']:.0f} req/s, p95 {result['p95_ms']:.1f} ms,"
        f" statuses {result['statuses']}"
    )
    return result
