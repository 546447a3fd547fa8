"""`saga up` keeps its data: stop and start again, and the event log, offsets, PostgreSQL and
Redis still hold what they held; `--fresh` wipes it. Topics carry the contract's retention."""

from __future__ import annotations

import os
import shlex
import signal
import stat
import subprocess
import sys
import time
import uuid
from pathlib import Path

import psycopg
import pytest
import redis

from events import messages as m
from events.envelope import Envelope
from events.serde import make_serde
from events.topics import CHECKOUT_EVENTS

pytestmark = pytest.mark.integration


def _up(data_dir: Path, *extra: str) -> tuple[subprocess.Popen[str], dict[str, str]]:
    env = {**os.environ}
    for var in (
        "KAFKA_BOOTSTRAP_SERVERS",
        "DATABASE_URL",
        "REDIS_URL",
        "STRIPE_API_BASE",
        "STRIPE_API_KEY",
        "JWT_SECRET",
        "STRIPE_WEBHOOK_SECRET",
        "STRIPE_WEBHOOK_SECRETS",
    ):
        env.pop(var, None)
    up = subprocess.Popen(
        [sys.executable, "-m", "infra.cli", "up", "--data-dir", str(data_dir), *extra],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert up.stdout is not None
    lines: list[str] = []
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not any("Ctrl-C stops" in x for x in lines):
        line = up.stdout.readline()
        if not line:
            break
        lines.append(line)
    assert any("Ctrl-C stops" in x for x in lines), "".join(lines)
    urls = {}
    for line in (data_dir / "saga.env").read_text().splitlines():
        key, _, value = line.removeprefix("export ").partition("=")
        urls[key] = shlex.split(value)[0]
    return up, urls


def _down(up: subprocess.Popen[str]) -> None:
    up.send_signal(signal.SIGINT)
    assert up.wait(90) == 0


def _inspect(urls: dict[str, str], checkout_id: str) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "infra.cli", "inspect", checkout_id],
        env={**os.environ, **urls},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    return result.stdout + result.stderr


def _mint(data_dir: Path) -> str:
    """`saga token create` as an operator on the machine runs it: no JWT_SECRET exported, the
    data directory's env file supplies it."""
    env = {k: v for k, v in os.environ.items() if k != "JWT_SECRET"}
    env_file = str(data_dir / "saga.env")
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "infra.cli",
            "token",
            "create",
            "--role",
            "admin",
            "--env-file",
            env_file,
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return result.stdout.strip()


def _accepts(secret: str, token: str) -> bool:
    from api.auth import Authenticator
    from api.errors import ApiError
    from tests.unit.api.fakes import FakeKeys

    try:
        return Authenticator(FakeKeys(), secret).authenticate(token, None).role == "admin"
    except ApiError:
        return False


def test_stop_and_start_keeps_checkouts_rows_and_keys() -> None:
    from tests.integration.kafka_helpers import produce

    # Not under pytest's private tmp root: PostgreSQL runs as its own user when we are root.
    data_dir = Path(f"/tmp/saga-durable-{uuid.uuid4().hex[:8]}")
    checkout_id = f"durable-{uuid.uuid4().hex[:8]}"
    up, urls = _up(data_dir)
    try:
        # The directory's own secrets, private to the user, in the env file workers read.
        assert len(urls["JWT_SECRET"]) >= 32 and urls["STRIPE_WEBHOOK_SECRETS"].startswith("whsec_")
        for private in ("saga.env", "secrets.json"):
            assert stat.S_IMODE((data_dir / private).stat().st_mode) == 0o600
        token = _mint(data_dir)
        started = m.CheckoutStarted(
            checkout_id=checkout_id,
            tenant_id="t-1",
            customer_id="c-1",
            customer_email="c@example.com",
            currency="EUR",
            items=(m.LineItem("SKU-1", 1, 1000),),
            shipping_address=m.Address("1 Main St", "Berlin", "BE", "10115", "DE"),
            payment_provider="stripe",
            payment_method="pm_card_visa",
            subtotal=1000,
            started_at=int(time.time() * 1000),
        )
        produce(
            urls["KAFKA_BOOTSTRAP_SERVERS"],
            CHECKOUT_EVENTS,
            make_serde(None),
            [Envelope.new(started, occurred_at=int(time.time() * 1000), producer="test")],
        )
        with psycopg.connect(urls["DATABASE_URL"], autocommit=True) as conn:
            conn.execute("CREATE TABLE IF NOT EXISTS durable_probe (id text primary key)")
            conn.execute("INSERT INTO durable_probe VALUES (%s)", (checkout_id,))
        redis.Redis.from_url(urls["REDIS_URL"]).set(f"probe:{checkout_id}", "kept")
        assert "CheckoutStarted" in _inspect(urls, checkout_id)
    finally:
        _down(up)

    again, urls_again = _up(data_dir)
    try:
        # The same ports and secrets, so workers' settings and minted tokens stay valid.
        assert urls_again == urls
        assert _accepts(urls_again["JWT_SECRET"], token)
        assert "CheckoutStarted" in _inspect(urls_again, checkout_id)
        with psycopg.connect(urls_again["DATABASE_URL"]) as conn:
            row = conn.execute("SELECT id FROM durable_probe WHERE id = %s", (checkout_id,))
            assert row.fetchone() == (checkout_id,)
        assert redis.Redis.from_url(urls_again["REDIS_URL"]).get(f"probe:{checkout_id}") == b"kept"
    finally:
        _down(again)

    fresh, urls_fresh = _up(data_dir, "--fresh")
    try:
        assert "no events for checkout" in _inspect(urls_fresh, checkout_id)
        assert urls_fresh["JWT_SECRET"] != urls["JWT_SECRET"]
        assert urls_fresh["STRIPE_WEBHOOK_SECRETS"] != urls["STRIPE_WEBHOOK_SECRETS"]
        assert not _accepts(urls_fresh["JWT_SECRET"], token)
    finally:
        _down(fresh)
        subprocess.run(["rm", "-rf", str(data_dir)], check=False)
