"""Storefront API keys and the admin audit log, in PostgreSQL.

Keys are 256-bit random tokens (`sk_` + urlsafe base64). Only their SHA-256 is stored: a plain
hash is enough for a high-entropy secret (nothing to brute-force, unlike a password), and it
lets us look a key up by an index. The stored hash is then compared with
`hmac.compare_digest` so the comparison itself leaks no timing.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import uuid
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager
from typing import Any

import psycopg

from api.ports import ApiKey
from events.validation import TENANT

Connect = Callable[[], AbstractContextManager[psycopg.Connection[Any]]]
"""A connection factory, e.g. `psycopg_pool.ConnectionPool.connection`."""

KEY_PREFIX = "sk_"


def hash_key(plaintext: str) -> bytes:
    return hashlib.sha256(plaintext.encode()).digest()


def create_api_key(conn: psycopg.Connection[Any], tenant: str, name: str) -> str:
    """A new key for `tenant`. The plaintext is returned once and never stored."""
    # The tenant goes into every StartCheckout of this key, and the orchestrator refuses a
    # command whose tenant breaks the limits: refuse such a tenant here, where it is named.
    if (reason := TENANT.check(tenant)) is not None:
        raise ValueError(f"tenant {reason}")
    plaintext = KEY_PREFIX + secrets.token_urlsafe(32)
    with conn.transaction():
        conn.execute(
            "INSERT INTO api_keys (key_id, tenant_id, name, key_hash, key_hint)"
            " VALUES (%s, %s, %s, %s, %s)",
            (f"key_{uuid.uuid4().hex[:16]}", tenant, name, hash_key(plaintext), plaintext[:7]),
        )
    return plaintext


def revoke_api_key(conn: psycopg.Connection[Any], key_id: str) -> bool:
    with conn.transaction():
        cur = conn.execute(
            "UPDATE api_keys SET revoked_at = now() WHERE key_id = %s AND revoked_at IS NULL",
            (key_id,),
        )
    return cur.rowcount == 1


class PostgresKeyStore:
    def __init__(self, connect: Connect) -> None:
        self._connect = connect

    def lookup(self, plaintext: str) -> ApiKey | None:
        if not plaintext.startswith(KEY_PREFIX) or len(plaintext) > 200:
            return None
        digest = hash_key(plaintext)
        with self._connect() as conn:
            row = conn.execute(
                "SELECT key_id, tenant_id, name, key_hash FROM api_keys"
                " WHERE key_hash = %s AND revoked_at IS NULL",
                (digest,),
            ).fetchone()
        if row is None or not hmac.compare_digest(bytes(row[3]), digest):
            return None
        return ApiKey(key_id=row[0], tenant_id=row[1], name=row[2])


class PostgresAuditLog:
    def __init__(self, connect: Connect) -> None:
        self._connect = connect

    def record(
        self,
        *,
        actor: str,
        action: str,
        object: str,
        before: Mapping[str, Any] | None,
        after: Mapping[str, Any] | None,
        request_id: str | None,
    ) -> None:
        with self._connect() as conn, conn.transaction():
            conn.execute(
                "INSERT INTO audit_log (actor, action, object, before, after, request_id)"
                " VALUES (%s, %s, %s, %s::jsonb, %s::jsonb, %s)",
                (
                    actor,
                    action,
                    object,
                    None if before is None else json.dumps(dict(before), sort_keys=True),
                    None if after is None else json.dumps(dict(after), sort_keys=True),
                    request_id,
                ),
            )
