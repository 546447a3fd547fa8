"""The embedded stack's generated secrets: random per data directory, handed to what it runs.

Tokens minted by `saga token create` with them are accepted by the API the composition root
builds (`build_api_deps` on the real PostgreSQL, Redis and Kafka), and localstripe signs its
webhooks with the stack's webhook secret, which our handler verifies.
"""

from __future__ import annotations

import dataclasses
import http.server
import queue
import stat
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import stripe
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from adapters.payments.webhooks import InMemoryEventStore, InvalidSignature, StripeWebhookHandler
from api.app import create_app
from api.auth import make_token
from infra.api_wiring import build_api_deps
from infra.cli import app as cli
from infra.embedded.localstripe import register_webhook
from infra.embedded.secrets import for_directory
from infra.embedded.stack import RunningStack
from infra.settings import MIN_JWT_SECRET_BYTES

pytestmark = pytest.mark.integration


def test_the_session_stack_generated_its_secrets(stack: RunningStack) -> None:
    s = stack.settings
    assert s.jwt_secret and len(s.jwt_secret.encode()) >= MIN_JWT_SECRET_BYTES
    assert len(s.stripe_webhook_secrets) == 1
    assert s.stripe_webhook_secrets[0].startswith("whsec_")
    assert s.stripe_api_key and s.stripe_api_key.startswith("sk_test_")
    # None of the values the source used to ship as defaults.
    assert s.stripe_webhook_secrets != ("whsec_embedded",)
    assert s.stripe_api_key != "sk_test_embedded"
    assert "embedded-dev-only" not in s.jwt_secret
    saved = stack.workdir / "secrets.json"
    assert stat.S_IMODE(saved.stat().st_mode) == 0o600


def test_a_durable_directory_keeps_its_secrets_and_a_throwaway_one_does_not(
    tmp_path: Path,
) -> None:
    kept = for_directory(tmp_path, keep=True)
    assert for_directory(tmp_path, keep=True) == kept
    fresh = for_directory(tmp_path, keep=False)
    assert fresh.jwt_secret != kept.jwt_secret
    assert fresh.stripe_webhook_secret != kept.stripe_webhook_secret
    assert stat.S_IMODE((tmp_path / "secrets.json").stat().st_mode) == 0o600
    assert kept.jwt_secret not in repr(kept)


@pytest.fixture(scope="module")
def api(stack: RunningStack) -> Iterator[TestClient]:
    admin = stack.settings.database_url
    assert admin
    from urllib.parse import urlsplit, urlunsplit

    import psycopg

    name = f"tok_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = urlunsplit(urlsplit(admin)._replace(path=f"/{name}"))
    deps = build_api_deps(dataclasses.replace(stack.settings, database_url=url))
    try:
        with TestClient(create_app(deps)) as client:
            yield client
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _mint(secret: str | None, *args: str) -> str:
    env = {"JWT_SECRET": secret}
    result = CliRunner().invoke(cli, ["token", "create", *args], env=env)
    assert result.exit_code == 0, result.output
    return result.stdout.strip()


def _status(client: TestClient, token: str) -> int:
    # An operator route: reading any tenant's checkout. Unknown id: 404 once authenticated.
    response = client.get(
        f"/v1/checkouts/co-{uuid.uuid4().hex[:8]}", headers={"Authorization": f"Bearer {token}"}
    )
    return response.status_code


def test_a_minted_operator_token_is_accepted_by_the_api(
    stack: RunningStack, api: TestClient
) -> None:
    token = _mint(stack.settings.jwt_secret, "--role", "operator", "--ttl", "5m")
    assert _status(api, token) == 404


def test_a_token_with_another_secret_is_refused(api: TestClient) -> None:
    token = _mint("not-the-stack-secret-" + "x" * 32, "--role", "operator")
    assert _status(api, token) == 401


def test_an_expired_token_is_refused(stack: RunningStack, api: TestClient) -> None:
    assert stack.settings.jwt_secret
    # Past the Authenticator's 30 s leeway; the CLI itself refuses a ttl <= 0.
    expired = make_token(
        stack.settings.jwt_secret, sub="op", role="operator", exp=int(time.time()) - 120
    )
    assert _status(api, expired) == 401


class _Inbox(http.server.BaseHTTPRequestHandler):
    received: queue.Queue[tuple[bytes, str]] = queue.Queue()

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.received.put((body, self.headers.get("Stripe-Signature", "")))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *_: object) -> None:
        pass


def test_localstripe_signs_webhooks_with_the_stacks_secret(stack: RunningStack) -> None:
    s = stack.settings
    assert s.stripe_api_base and s.stripe_api_key
    server = http.server.HTTPServer(("127.0.0.1", 0), _Inbox)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    endpoint = f"test-{uuid.uuid4().hex[:8]}"
    url = f"http://127.0.0.1:{server.server_address[1]}/hook"
    try:
        register_webhook(
            s.stripe_api_base, url, s.stripe_webhook_secrets[0], endpoint, ["customer.created"]
        )
        client = stripe.StripeClient(s.stripe_api_key, base_addresses={"api": s.stripe_api_base})
        customer = client.v1.customers.create(params={"email": f"{endpoint}@example.com"})
        handler = StripeWebhookHandler(s.stripe_webhook_secrets, InMemoryEventStore())
        deadline = time.monotonic() + 20
        while True:  # other tests' customers may arrive too: find ours
            body, signature = _Inbox.received.get(timeout=max(0.1, deadline - time.monotonic()))
            event = handler.verify(body, signature, int(time.time()))
            if event["data"]["object"]["id"] == customer.id:
                break
        with pytest.raises(InvalidSignature, match="no v1 signature"):
            StripeWebhookHandler(["whsec_other"], InMemoryEventStore()).verify(
                body, signature, int(time.time())
            )
    finally:
        # localstripe has no delete: point the endpoint at an event that never happens.
        register_webhook(s.stripe_api_base, url, "whsec_retired", endpoint, ["never.happens"])
        server.shutdown()
        server.server_close()
