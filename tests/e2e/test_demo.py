"""`make demo` as a newcomer meets it: `saga demo --serve` starts its own embedded stack and the
engine as `saga run` runs it, sends checkouts through the storefront API, and keeps running.
Then the README's operator walkthrough, with the commands the demo printed: inspect the
compensated checkout, re-drive the dead letter, resume the parked saga — each checked against
the sources of truth (checkout.events through `saga inspect`, audit_log, the projection). Ctrl-C
stops everything with a clean exit and no librdkafka noise on stderr."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from infra.settings import child_environ, parse_env_file

pytestmark = pytest.mark.integration

READY = "the engine keeps running"


def until(what: str, check: Callable[[], Any], timeout_s: float) -> Any:
    deadline = time.monotonic() + timeout_s
    while not (result := check()):
        assert time.monotonic() < deadline, f"not within {timeout_s}s: {what}"
        time.sleep(0.2)
    return result


def pristine_environ() -> dict[str, str]:
    """The caller's environment without any service the test session points at: the demo must
    bring up everything itself, as on a fresh machine."""
    from infra.settings import _ENV

    return {k: v for k, v in child_environ().items() if k not in _ENV}


def cli(
    env: dict[str, str], *args: str, timeout_s: float = 120
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "infra.cli", *args],
        env={**pristine_environ(), **env, "COLUMNS": "250"},
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
    )


def test_demo_then_the_operator_walkthrough_then_ctrl_c(tmp_path: Path) -> None:
    out_path, err_path = tmp_path / "demo.out", tmp_path / "demo.err"
    with out_path.open("w") as out, err_path.open("w") as err:
        demo = subprocess.Popen(
            [sys.executable, "-m", "infra.cli", "demo", "--serve"],
            stdout=out,
            stderr=err,
            env={**pristine_environ(), "COLUMNS": "250"},
            start_new_session=True,
        )
    try:
        until(
            "the demo serves",
            lambda: READY in out_path.read_text() or demo.poll() is not None,
            timeout_s=420,
        )
        text = out_path.read_text()
        assert demo.poll() is None, text + err_path.read_text()
        assert "POST /v1/checkouts x5" in text and "all 202 Accepted" in text
        assert len(re.findall(r"COMPLETED\s+│ 65\.00 USD", text)) == 2, text
        assert "authorize_payment: Your card was declined." in text
        assert "reserve_inventory: out_of_stock:SKU-LIMITED-POSTER" in text
        assert "analysts: daily_revenue" in text
        assert re.search(r"│ USD\s+│ 13000\s+│ 0\s+│ 13000\s+│ 2\s+│", text), text

        console = re.search(r"operator console:\s+(\S+/console#token=\S+)", text)
        env_dir = re.search(r'saga env --data-dir (\S+)\)"', text)
        compensated = re.search(r"saga inspect (co_\w+)", text)
        dead = re.search(r"saga dlq redrive --id (\S+)", text)
        parked = re.search(r"saga checkout retry (co_\w+)", text)
        assert console and env_dir and compensated and dead and parked, text
        env = parse_env_file(Path(env_dir.group(1)) / "saga.env")
        assert env["DATABASE_URL"] and env["KAFKA_BOOTSTRAP_SERVERS"]

        # 1. The compensated checkout's timeline: declined, its stock released.
        inspected = cli(env, "inspect", compensated.group(1))
        assert inspected.returncode == 0, inspected.stdout + inspected.stderr
        assert "PaymentDeclined" in inspected.stdout and "InventoryReleased" in inspected.stdout

        # 2. Re-drive the dead letter: back on its topic with provenance, audited.
        redriven = cli(env, "dlq", "redrive", "--id", dead.group(1), "--reason", "walkthrough")
        assert redriven.returncode == 0, redriven.stdout + redriven.stderr
        with psycopg.connect(env["DATABASE_URL"]) as conn:
            audited = conn.execute(
                "SELECT count(*) FROM audit_log WHERE action = 'dlq.redrive' AND object = %s",
                (dead.group(1),),
            ).fetchone()
        assert audited == (1,)

        # 3. Resume the parked saga: the stock take is over, its units go back, it ends FAILED
        #    for the reason it was failing (the card was declined).
        checkout_id = parked.group(1)
        retried = cli(env, "checkout", "retry", checkout_id, "--reason", "stock take done")
        assert retried.returncode == 0, retried.stdout + retried.stderr

        def status() -> str | None:
            with psycopg.connect(env["DATABASE_URL"]) as conn:
                row = conn.execute(
                    "SELECT status FROM projections.checkouts WHERE checkout_id = %s",
                    (checkout_id,),
                ).fetchone()
            return None if row is None else str(row[0])

        until("the resumed saga ends FAILED", lambda: status() == "FAILED", timeout_s=120)
        inspected = cli(env, "inspect", checkout_id)
        assert "CheckoutResumed" in inspected.stdout and "InventoryReleased" in inspected.stdout

        # The console the demo points at answers (its token rides in the URL's fragment, which
        # a browser never sends; tests/e2e/test_console.py drives it in Chromium).
        page = httpx.get(console.group(1).split("#")[0], timeout=30)
        assert page.status_code == 200 and "<html" in page.text.lower()
    finally:
        if demo.poll() is None:
            os.killpg(demo.pid, signal.SIGINT)
        code = demo.wait(120)
    assert code == 0, out_path.read_text()[-3000:] + err_path.read_text()
    noise = [line for line in err_path.read_text().splitlines() if "rdkafka" in line]
    assert noise == [], noise
    assert "stopping the engine, then the stack" in out_path.read_text()
