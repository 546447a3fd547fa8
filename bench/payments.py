"""Authorization cost against account history (issue 13 item 1): p50/p95/p99 of
`StripeGateway.authorize` on a localstripe with 0 and with 10,000 existing PaymentIntents.

    python -m bench.payments [--existing 10000] [--samples 1000] [--attempt-log postgres|memory]
    saga bench --only payments

Two localstripes from our launcher (loopback, Idempotency-Key layer, no pickle): one empty, one
seeded with `--existing` confirmed PaymentIntents straight through its HTTP API (8 concurrent
clients; the seed is not timed). Authorizations alternate between the two, one at a time, so
whatever else runs on the machine weighs on both figures alike. Each authorization is a new
checkout with the PostgreSQL attempt log of the payment worker (embedded PostgreSQL), as in
production. A counting HTTP session in the SDK's slot counts every request the gateway sends
and the listings among them: the design says 1 and 0 per authorization.

`--profile FILE` runs the seeded localstripe under cProfile and writes its stats on exit, to see
what inside the emulator still grows with its store.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import requests
import stripe
from psycopg_pool import ConnectionPool

from adapters.payments.attempt_log import AttemptLog, InMemoryAttemptLog, PostgresAttemptLog
from adapters.payments.port import AuthorizationRequest, Authorized
from adapters.payments.stripe_gateway import StripeGateway
from infra.embedded.localstripe import LocalStripe
from infra.embedded.process import free_port, stop, wait_until

RESULTS = Path(__file__).parent / "results"
LIST_PATH = "/v1/payment_intents"


class CountingSession(requests.Session):
    def __init__(self) -> None:
        super().__init__()
        self.sent: Counter[tuple[str, str]] = Counter()

    def request(self, method: Any, url: Any, *args: Any, **kwargs: Any) -> requests.Response:
        self.sent[(str(method).upper(), urlsplit(str(url)).path)] += 1
        return super().request(method, url, *args, **kwargs)

    @property
    def total(self) -> int:
        return sum(self.sent.values())

    @property
    def listings(self) -> int:
        return self.sent[("GET", LIST_PATH)]


class ProfiledLocalStripe(LocalStripe):
    """Our launcher under cProfile; stats are written when it stops (SIGINT: a clean exit)."""

    profile: Path | None = None

    def start(self) -> None:
        if self.profile is None:
            return super().start()
        log = self.workdir / "localstripe.log"
        with log.open("ab") as out:
            self._proc = subprocess.Popen(
                [sys.executable, "-m", "cProfile", "-o", str(self.profile), "-m",
                 "infra.embedded.localstripe_server", "--port", str(self.port)],
                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            )  # fmt: skip
        wait_until(self.healthy, timeout=30, what="localstripe", proc=self._proc, log=log)

    def stop(self) -> None:
        import signal

        stop(self._proc, sig=signal.SIGINT, grace=60)
        self._proc = None


@contextlib.contextmanager
def peer(workdir: Path, profile: Path | None = None) -> Iterator[LocalStripe]:
    running = ProfiledLocalStripe(
        workdir=workdir, port=free_port(), api_key=f"sk_test_{secrets.token_hex(12)}"
    )
    running.profile = profile
    running.workdir.mkdir(parents=True, exist_ok=True)
    running.start()
    try:
        yield running
    finally:
        running.stop()


def seed(target: LocalStripe, count: int, workers: int = 8) -> float:
    """`count` confirmed, manual-capture PaymentIntents of other checkouts; seconds taken."""
    started = time.perf_counter()
    headers = {"Authorization": f"Bearer {target.api_key}"}

    def create(chunk: range) -> None:
        with httpx.Client(base_url=target.url, headers=headers, timeout=30) as client:
            for i in chunk:
                response = client.post(
                    "/v1/payment_intents",
                    data={
                        "amount": str(1000 + i % 500),
                        "currency": "eur",
                        "payment_method": "pm_card_visa",
                        "payment_method_types[0]": "card",
                        "capture_method": "manual",
                        "confirm": "true",
                        "metadata[checkout_id]": f"seed_{i}",
                    },
                )
                response.raise_for_status()

    step = -(-count // workers)
    with ThreadPoolExecutor(workers) as pool:
        list(pool.map(create, [range(s, min(s + step, count)) for s in range(0, count, step)]))
    return time.perf_counter() - started


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def summary(ms: list[float]) -> dict[str, float]:
    return {
        "p50_ms": round(statistics.median(ms), 2),
        "p95_ms": round(percentile(ms, 0.95), 2),
        "p99_ms": round(percentile(ms, 0.99), 2),
        "mean_ms": round(statistics.fmean(ms), 2),
    }


def run(
    existing: int = 10_000,
    samples: int = 1000,
    attempt_log: str = "postgres",
    profile: Path | None = None,
) -> dict[str, Any]:
    with contextlib.ExitStack() as stack:
        log: AttemptLog
        if attempt_log == "postgres":
            from db.migrate import upgrade
            from infra.embedded.stack import embedded_stack
            from infra.settings import load_settings

            running = stack.enter_context(embedded_stack(load_settings(), only=("postgres",)))
            url = running.settings.database_url
            assert url
            upgrade(url)
            # Pooled, as the payment worker wires it (infra/adapters_wiring.py).
            pool: ConnectionPool[Any] = ConnectionPool(url, min_size=1, max_size=4, open=True)
            stack.callback(pool.close)
            log = PostgresAttemptLog(pool.connection)
        else:
            log = InMemoryAttemptLog()
        root = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-pay-")))
        empty = stack.enter_context(peer(root / "empty"))
        full = stack.enter_context(peer(root / "full", profile))
        print(f"seeding {existing} PaymentIntents ...", flush=True)
        seed_s = seed(full, existing)
        print(f"  seeded in {seed_s:.1f} s ({existing / seed_s:.0f}/s)", flush=True)

        sessions = {"0": CountingSession(), str(existing): CountingSession()}
        gateways = {
            name: StripeGateway(
                target.api_key,
                api_base=target.url,
                http_client=stripe.RequestsClient(timeout=30, session=sessions[name]),
                attempts=log,
            )
            for name, target in (("0", empty), (str(existing), full))
        }
        timings: dict[str, list[float]] = {name: [] for name in gateways}

        def authorize(name: str, timed: bool) -> None:
            cid = f"co_{uuid.uuid4().hex[:16]}"
            request = AuthorizationRequest(
                cid, 1, f"{cid}:authorize_payment:1", "pm_card_visa", "cus_bench", 2500, "EUR"
            )
            started = time.perf_counter()
            result = gateways[name].authorize(request)
            elapsed = (time.perf_counter() - started) * 1000
            assert isinstance(result, Authorized), result
            if timed:
                timings[name].append(elapsed)

        for _ in range(20):  # warm connections, code paths and the database
            for name in gateways:
                authorize(name, timed=False)
        before = {name: (s.total, s.listings) for name, s in sessions.items()}
        for _ in range(samples):
            for name in gateways:
                authorize(name, timed=True)

    result: dict[str, Any] = {"existing": existing, "samples": samples, "attempt_log": attempt_log}
    result["seed_s"] = round(seed_s, 1)
    for name, session in sessions.items():
        total, listings = session.total - before[name][0], session.listings - before[name][1]
        result[f"intents_{name}"] = {
            **summary(timings[name]),
            "requests_per_authorization": total / samples,
            "listings_per_authorization": listings / samples,
        }
    zero, many = result["intents_0"], result[f"intents_{existing}"]
    result["ratio_p50"] = round(many["p50_ms"] / zero["p50_ms"], 3)
    result["ratio_p99"] = round(many["p99_ms"] / zero["p99_ms"], 3)
    return result


def report(result: dict[str, Any]) -> None:
    existing = result["existing"]
    print(f"authorize, {result['samples']} samples each, attempt log: {result['attempt_log']}")
    for name in ("0", str(existing)):
        r = result[f"intents_{name}"]
        print(
            f"  {name:>6} existing intents: p50 {r['p50_ms']:.2f} ms  p95 {r['p95_ms']:.2f} ms"
            f"  p99 {r['p99_ms']:.2f} ms  requests/auth {r['requests_per_authorization']:.2f}"
            f"  listings/auth {r['listings_per_authorization']:.2f}"
        )
    print(f"  ratio {existing}/0: p50 {result['ratio_p50']:.2f}  p99 {result['ratio_p99']:.2f}")
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "payments.json").write_text(json.dumps(result, indent=2) + "\n")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.payments")
    parser.add_argument("--existing", type=int, default=10_000)
    # p99 of fewer samples is a handful of requests, i.e. whatever else the machine was doing.
    parser.add_argument("--samples", type=int, default=1000)
    parser.add_argument("--attempt-log", choices=("postgres", "memory"), default="postgres")
    parser.add_argument("--profile", type=Path, default=None)
    args = parser.parse_args(argv)
    report(run(args.existing, args.samples, args.attempt_log, args.profile))


if __name__ == "__main__":
    main()
