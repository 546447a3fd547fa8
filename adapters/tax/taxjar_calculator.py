"""TaxJar (`POST /v2/taxes`) on the official `taxjar` client.

The client's own responder parses amounts into floats (jsonobject FloatProperty) and reads the
status from the error body; we plug in our responder instead (a supported constructor argument),
which parses JSON numbers as Decimal and classifies by the HTTP status. Requests are encoded with
exact decimal numbers for the same reason. Everything else — auth header, user agent, timeouts,
connection-error translation, `api_url` — is the official client's.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import requests
import taxjar
from taxjar.exceptions import TaxJarConnectionError, TaxJarError

from adapters.money import MoneyError, to_decimal, to_minor
from adapters.tax.address import NormalizedAddress, normalize_address
from adapters.tax.port import (
    SOURCE_TAXJAR,
    TaxInputError,
    TaxLineAmount,
    TaxProviderError,
    TaxProviderUnavailable,
    TaxQuote,
    TaxRequest,
)
from adapters.tax.validation import validate_request

# Countries TaxJar calculates for (US, Canada, Australia, EU, UK).
TAXJAR_COUNTRIES: frozenset[str] = frozenset(
    {
        "US",
        "CA",
        "AU",
        "GB",
        "AT",
        "BE",
        "BG",
        "HR",
        "CY",
        "CZ",
        "DK",
        "EE",
        "FI",
        "FR",
        "DE",
        "GR",
        "HU",
        "IE",
        "IT",
        "LV",
        "LT",
        "LU",
        "MT",
        "NL",
        "PL",
        "PT",
        "RO",
        "SK",
        "SI",
        "ES",
        "SE",
    }
)


@dataclass(frozen=True, slots=True)
class ShopAddress:
    """Ship-from or nexus address of the shop (configuration, not per request)."""

    line1: str
    city: str
    state: str
    postal_code: str
    country: str
    id: str = ""


class _ExactJsonClient(taxjar.Client):
    """The official client, but request bodies carry exact decimals instead of floats."""

    def _post(self, endpoint: str, data: Mapping[str, Any]) -> Any:
        return self._request(self.session.post, endpoint, {"data": _dumps_exact(data)})


def _dumps_exact(value: Any) -> str:
    """JSON with Decimal written as a plain number literal ('19.99'), never via float."""
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, Mapping):
        return (
            "{"
            + ",".join(f"{json.dumps(str(k))}:{_dumps_exact(v)}" for k, v in value.items())
            + "}"
        )
    if isinstance(value, list | tuple):
        return "[" + ",".join(_dumps_exact(v) for v in value) + "]"
    if isinstance(value, float):
        raise TypeError("float in a TaxJar request; use Decimal")
    return json.dumps(value)


@dataclass(frozen=True, slots=True)
class _Reply:
    status: int
    body: Any


def _responder(response: requests.Response) -> _Reply:
    try:
        body = json.loads(response.text, parse_float=Decimal)
    except ValueError:
        body = None  # e.g. an HTML 502 page from a proxy; the status still classifies it
    return _Reply(response.status_code, body)


class TaxJarCalculator:
    def __init__(
        self,
        api_key: str,
        *,
        api_url: str = taxjar.DEFAULT_API_URL,
        from_address: ShopAddress | None = None,
        nexus_addresses: Sequence[ShopAddress] = (),
        supported_countries: Iterable[str] = TAXJAR_COUNTRIES,
        timeout_s: float = 5.0,
    ) -> None:
        self._client = _ExactJsonClient(
            api_key,
            api_url=api_url,
            options={"timeout": timeout_s, "headers": {"Content-Type": "application/json"}},
            responder=_responder,
        )
        self._from = from_address
        self._nexus = tuple(nexus_addresses)
        self._countries = frozenset(supported_countries)
        # Shop addresses change TaxJar's answer, so they are part of the provider identity.
        config = repr((api_url, self._from, self._nexus)).encode()
        self._provider_id = f"taxjar:{hashlib.sha256(config).hexdigest()[:16]}"

    @property
    def provider_id(self) -> str:
        return self._provider_id

    def calculate(self, request: TaxRequest) -> TaxQuote:
        to = validate_request(request)
        if to.country not in self._countries:
            raise TaxInputError(f"tax: country {to.country} is not supported by TaxJar")
        body = self._order(request, to)
        try:
            reply: _Reply = self._client.tax_for_order(body)
        except TaxJarConnectionError as e:  # connect errors and timeouts
            raise TaxProviderUnavailable(f"taxjar unreachable: {e}") from e
        except (TaxJarError, requests.RequestException) as e:
            raise TaxProviderUnavailable(f"taxjar transport error: {e}") from e
        if reply.status != 200:
            raise _error_for(reply)
        return self._quote(reply.body, request)

    def _order(self, request: TaxRequest, to: NormalizedAddress) -> dict[str, Any]:
        cur = request.currency
        order: dict[str, Any] = {
            "to_country": to.country,
            "to_zip": to.postal_code,
            "to_state": to.state,
            "to_city": request.to_address.city,
            "to_street": request.to_address.line1,
            "amount": to_decimal(sum(line.taxable_amount for line in request.lines), cur),
            "shipping": to_decimal(request.shipping_amount, cur),
            "line_items": [
                {
                    "id": line.id,
                    "quantity": line.quantity,
                    "unit_price": to_decimal(line.unit_amount, cur),
                    "discount": to_decimal(line.discount, cur),
                    **(
                        {"product_tax_code": line.product_tax_code} if line.product_tax_code else {}
                    ),
                }
                for line in request.lines
            ],
        }
        if self._from is not None:
            f = self._from
            order.update(
                from_country=f.country,
                from_zip=f.postal_code,
                from_state=f.state,
                from_city=f.city,
                from_street=f.line1,
            )
        if self._nexus:
            order["nexus_addresses"] = [
                {
                    "id": n.id or f"nexus-{i}",
                    "country": n.country,
                    "zip": n.postal_code,
                    "state": n.state,
                    "city": n.city,
                    "street": n.line1,
                }
                for i, n in enumerate(self._nexus)
            ]
        return order

    def _quote(self, body: Any, request: TaxRequest) -> TaxQuote:
        """A 200 without a readable `amount_to_collect` is a provider failure, never zero tax."""
        cur = request.currency
        try:
            tax = body["tax"]
            amount = to_minor(tax["amount_to_collect"], cur)
            breakdown = tax.get("breakdown") or {}
            lines = [
                TaxLineAmount(
                    str(item["id"]),
                    to_minor(item["taxable_amount"], cur),
                    to_minor(item["tax_collectable"], cur),
                )
                for item in breakdown.get("line_items") or ()
            ]
            shipping = breakdown.get("shipping")
            if shipping and shipping.get("tax_collectable"):
                lines.append(
                    TaxLineAmount(
                        "shipping",
                        to_minor(shipping["taxable_amount"], cur),
                        to_minor(shipping["tax_collectable"], cur),
                    )
                )
        except (KeyError, TypeError, AttributeError, MoneyError) as e:
            raise TaxProviderUnavailable(
                f"taxjar returned an unreadable tax response: {e!r}"
            ) from e
        if amount < 0:
            raise TaxProviderUnavailable("taxjar returned a negative amount_to_collect")
        return TaxQuote(amount=amount, currency=cur, source=SOURCE_TAXJAR, breakdown=tuple(lines))


def _error_for(reply: _Reply) -> Exception:
    """TaxJar's documented statuses -> our error types."""
    detail = ""
    if isinstance(reply.body, Mapping):
        detail = str(reply.body.get("detail") or reply.body.get("error") or "")
    what = f"taxjar {reply.status}" + (f": {detail}" if detail else "")
    if reply.status in (400, 422):
        # TaxJar validated our order and rejected it (e.g. zip not in state): the customer's
        # input, permanent, and not something a fallback table should paper over.
        return TaxInputError(f"tax: {detail or 'request rejected by TaxJar'}")
    if reply.status == 429 or reply.status >= 500:
        return TaxProviderUnavailable(what)
    # 401/403/404/405/406/410: our key or URL is wrong. Retrying the same call cannot help, but it
    # is a provider-side failure (eligible for fallback), not the customer's fault.
    return TaxProviderError(what, retryable=False)


def shop_address(
    line1: str, city: str, state: str, postal_code: str, country: str, id: str = ""
) -> ShopAddress:
    """A validated, normalised shop address (raises AddressError on a malformed one)."""
    n = normalize_address(line1, city, state, postal_code, country)
    return ShopAddress(line1, city, n.state, n.postal_code, n.country, id)
