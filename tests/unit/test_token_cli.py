"""`saga token create` mints exactly what the API's Authenticator accepts, and `saga api`
refuses to start without its secrets (one line naming the variable, non-zero exit)."""

from __future__ import annotations

import time
from pathlib import Path

import jwt
import pytest
from typer.testing import CliRunner

from api.auth import Authenticator
from api.errors import ApiError
from infra.cli import app, parse_duration
from tests.unit.api.fakes import FakeKeys

SECRET = "cli-test-secret-" + "k" * 32
# Every variable the commands read, unset: the developer's own shell must not leak in.
CLEAN = {
    "JWT_SECRET": None,
    "STRIPE_WEBHOOK_SECRET": None,
    "STRIPE_WEBHOOK_SECRETS": None,
    "KAFKA_BOOTSTRAP_SERVERS": None,
    "DATABASE_URL": None,
    "REDIS_URL": None,
}


def mint(*args: str, env: dict[str, str | None] | None = None) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, ["token", "create", *args], env={**CLEAN, **(env or {})})
    return result.exit_code, result.stdout, result.stderr


def test_a_minted_operator_token_is_what_the_api_accepts() -> None:
    code, out, _ = mint("--role", "operator", "--ttl", "15m", env={"JWT_SECRET": SECRET})
    assert code == 0
    token = out.strip()
    assert out == token + "\n"  # only the token on stdout, for $(saga token create ...)
    principal = Authenticator(FakeKeys(), SECRET).authenticate(token, None)
    assert principal.role == "operator" and principal.via == "jwt"
    claims = jwt.decode(token, SECRET, algorithms=["HS256"])
    assert 14 * 60 <= claims["exp"] - time.time() <= 15 * 60


def test_a_token_signed_with_another_secret_is_refused() -> None:
    _, out, _ = mint("--role", "admin", env={"JWT_SECRET": "another-" + "z" * 40})
    with pytest.raises(ApiError) as refused:
        Authenticator(FakeKeys(), SECRET).authenticate(out.strip(), None)
    assert refused.value.status == 401


def test_a_storefront_token_names_its_tenant() -> None:
    code, _, err = mint("--role", "storefront", env={"JWT_SECRET": SECRET})
    assert code == 2 and "needs --tenant" in err
    _, out, _ = mint("--role", "storefront", "--tenant", "shop-1", env={"JWT_SECRET": SECRET})
    principal = Authenticator(FakeKeys(), SECRET).authenticate(out.strip(), None)
    assert principal.tenant_id == "shop-1"


def test_without_a_secret_it_refuses_in_one_line(tmp_path: Path) -> None:
    code, out, err = mint("--role", "admin", "--env-file", str(tmp_path / "none.env"))
    assert code == 2 and out == ""
    assert err.strip().startswith("JWT_SECRET is not set") and "\n" not in err.strip()


def test_the_data_directorys_env_file_supplies_the_secret(tmp_path: Path) -> None:
    env_file = tmp_path / "saga.env"
    env_file.write_text(f"export JWT_SECRET='{SECRET}'\n")
    code, out, _ = mint("--role", "admin", "--env-file", str(env_file))
    assert code == 0
    assert Authenticator(FakeKeys(), SECRET).authenticate(out.strip(), None).role == "admin"


@pytest.mark.parametrize(
    ("text", "seconds"), [("90", 90), ("90s", 90), ("15m", 900), ("2h", 7200), ("7d", 604800)]
)
def test_durations(text: str, seconds: int) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("ttl", ["0", "-5m", "soon", "31d"])
def test_a_bad_or_too_long_ttl_is_refused(ttl: str) -> None:
    code, out, err = mint("--role", "admin", "--ttl", ttl, env={"JWT_SECRET": SECRET})
    assert code == 2 and out == ""
    assert "ttl" in err.lower() or "duration" in err


@pytest.mark.parametrize(
    ("env", "variable"),
    [
        ({}, "JWT_SECRET"),
        ({"JWT_SECRET": SECRET}, "STRIPE_WEBHOOK_SECRET"),
    ],
)
def test_the_api_refuses_to_start_without_its_secrets(
    env: dict[str, str | None], variable: str
) -> None:
    result = CliRunner().invoke(app, ["api"], env={**CLEAN, **env})
    assert result.exit_code == 2
    message = result.output.strip()
    assert message.startswith(f"{variable}") and "is not set" in message and "\n" not in message


def test_a_short_jwt_secret_stops_the_api_naming_the_variable() -> None:
    result = CliRunner().invoke(app, ["api"], env={**CLEAN, "JWT_SECRET": "too-short"})
    assert result.exit_code == 2
    assert "JWT_SECRET=<hidden> is invalid: must be at least 32 bytes" in result.output
    assert "too-short" not in result.output
