"""The embedded stack's secrets: random per data directory, never in the source.

A durable data directory (`saga up`) keeps them in `D/secrets.json` (mode 0600) so tokens minted
before a restart stay valid; a throwaway directory gets fresh ones each run. Secrets the
environment already sets are used as they are and never written here.
"""

from __future__ import annotations

import json
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

FILE = "secrets.json"


@dataclass(frozen=True, slots=True)
class StackSecrets:
    jwt_secret: str
    stripe_webhook_secret: str
    stripe_api_key: str  # localstripe accepts any sk_ key; a random one keeps it unguessable

    def __repr__(self) -> str:
        return "StackSecrets(<hidden>)"


def generate() -> StackSecrets:
    return StackSecrets(
        jwt_secret=secrets.token_urlsafe(48),  # 64 characters, 288 bits
        stripe_webhook_secret=f"whsec_{secrets.token_urlsafe(32)}",
        stripe_api_key=f"sk_test_{secrets.token_urlsafe(24)}",
    )


def for_directory(root: Path, *, keep: bool) -> StackSecrets:
    """The directory's secrets; created (0600) when missing or unreadable, or when not `keep`."""
    path = root / FILE
    if keep:
        try:
            return StackSecrets(**json.loads(path.read_text()))
        except (FileNotFoundError, ValueError, TypeError):
            pass
    fresh = generate()
    # Created with 0600 before any byte is written: no window where another user can read it.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(
            {
                "jwt_secret": fresh.jwt_secret,
                "stripe_webhook_secret": fresh.stripe_webhook_secret,
                "stripe_api_key": fresh.stripe_api_key,
            },
            f,
        )
    return fresh
