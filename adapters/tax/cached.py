"""Redis cache of tax quotes, 24 h, keyed by a hash of the inputs that change the answer.

Key inputs: provider identity (incl. its configuration), currency, the normalised destination,
each line (id, sku, quantity, unit amount, discount, tax code) and shipping. Line ids are in
the key because the breakdown echoes them.

The cache is best-effort: Redis being down must not fail a checkout, so errors are logged and
the inner calculator answers. Only first-hand answers are cached — a fallback quote must not
outlive the outage that caused it.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import asdict
from typing import Any

import redis

from adapters.tax.port import (
    SOURCE_RATE_TABLE_FALLBACK,
    TaxCalculator,
    TaxLineAmount,
    TaxQuote,
    TaxRequest,
)
from adapters.tax.validation import validate_request

log = logging.getLogger(__name__)

DAY_S = 24 * 60 * 60


class CachedTaxCalculator:
    def __init__(
        self,
        inner: TaxCalculator,
        client: redis.Redis,
        *,
        ttl_s: int = DAY_S,
        prefix: str = "tax:quote:v1:",
    ) -> None:
        self._inner = inner
        self._redis = client
        self._ttl_s = ttl_s
        self._prefix = prefix

    @property
    def provider_id(self) -> str:
        return self._inner.provider_id

    def key(self, request: TaxRequest) -> str:
        to = validate_request(request)  # raises TaxInputError before we touch Redis
        material: dict[str, Any] = {
            "provider": self._inner.provider_id,
            "currency": request.currency,
            "to": asdict(to),
            "lines": [
                [ln.id, ln.sku, ln.quantity, ln.unit_amount, ln.discount, ln.product_tax_code]
                for ln in request.lines
            ],
            "shipping": request.shipping_amount,
        }
        canonical = json.dumps(material, sort_keys=True, separators=(",", ":"))
        return self._prefix + hashlib.sha256(canonical.encode()).hexdigest()

    def calculate(self, request: TaxRequest) -> TaxQuote:
        key = self.key(request)
        cached = self._get(key)
        if cached is not None:
            return cached
        quote = self._inner.calculate(request)
        if quote.source != SOURCE_RATE_TABLE_FALLBACK:
            self._put(key, quote)
        return quote

    def _get(self, key: str) -> TaxQuote | None:
        try:
            raw = self._redis.get(key)
        except redis.RedisError as e:
            log.warning("tax cache read failed, calculating without it: %s", e)
            return None
        if raw is None:
            return None
        try:
            return _decode(raw)
        except (ValueError, KeyError, TypeError) as e:
            log.warning("tax cache entry %s unreadable, recalculating: %r", key, e)
            return None

    def _put(self, key: str, quote: TaxQuote) -> None:
        try:
            self._redis.set(key, json.dumps(asdict(quote)), ex=self._ttl_s)
        except redis.RedisError as e:
            log.warning("tax cache write failed: %s", e)


def _decode(raw: bytes | str) -> TaxQuote:
    data = json.loads(raw)
    amount = data["amount"]
    if not isinstance(amount, int) or isinstance(amount, bool):
        raise TypeError("amount is not an integer")
    return TaxQuote(
        amount=amount,
        currency=str(data["currency"]),
        source=str(data["source"]),
        breakdown=tuple(
            TaxLineAmount(str(b["line_id"]), int(b["taxable_amount"]), int(b["tax_amount"]))
            for b in data["breakdown"]
        ),
    )
