"""Request and response bodies: the HTTP contract of ARCHITECTURE.md §6, as pydantic models.

Money is integer minor units. `strict=True` on every amount and quantity: JSON `12.5`, `"12"`
and `true` are refused rather than coerced, because a storefront that sends a float has already
lost the exact amount. Free-text fields refuse control characters (NUL would poison the
PostgreSQL projections downstream, long after the API said 202).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator

from api.iso import COUNTRIES, CURRENCIES, PAYMENT_PROVIDERS

MAX_UNIT_AMOUNT = 100_000_000_000  # 1e9 major units of a 2-decimal currency: no real price
MAX_QUANTITY = 10_000
MAX_LINES = 100

# At least one visible character, no control characters.
_TEXT = r"^[^\x00-\x1f\x7f]*[^\x00-\x20\x7f][^\x00-\x1f\x7f]*$"
_EMAIL = r"^[^@\s\x00-\x1f\x7f]+@[^@\s\x00-\x1f\x7f]+\.[^@\s\x00-\x1f\x7f]+$"

Text = Annotated[str, StringConstraints(min_length=1, max_length=200, pattern=_TEXT)]
OptionalText = Annotated[str, StringConstraints(max_length=100, pattern=r"^[^\x00-\x1f\x7f]*$")]
Sku = Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=_TEXT)]
MinorUnits = Annotated[int, Field(strict=True, ge=0, le=MAX_UNIT_AMOUNT)]
Currency = Annotated[
    str,
    Field(
        pattern=r"^[A-Z]{3}$",
        description="ISO-4217 code",
        json_schema_extra={"enum": sorted(CURRENCIES)},
    ),
]
Country = Annotated[
    str,
    Field(
        pattern=r"^[A-Z]{2}$",
        description="ISO-3166-1 alpha-2 code",
        json_schema_extra={"enum": sorted(COUNTRIES)},
    ),
]


class _Strict(BaseModel):
    # Unknown fields are refused: a typo in a money API should fail loudly, not be ignored.
    model_config = ConfigDict(extra="forbid", frozen=True)


class Customer(_Strict):
    id: Text
    email: Annotated[str, StringConstraints(min_length=3, max_length=254, pattern=_EMAIL)]


class Item(_Strict):
    sku: Sku
    quantity: Annotated[int, Field(strict=True, ge=1, le=MAX_QUANTITY)]
    unit_amount: MinorUnits


class ShippingAddress(_Strict):
    line1: Text
    city: Text
    state: OptionalText = ""
    postal_code: Annotated[str, StringConstraints(max_length=20, pattern=r"^[^\x00-\x1f\x7f]*$")]
    country: Country

    @field_validator("country")
    @classmethod
    def _known_country(cls, value: str) -> str:
        if value not in COUNTRIES:
            raise ValueError(f"{value!r} is not an ISO-3166-1 alpha-2 country code")
        return value


class Payment(_Strict):
    provider: Literal["stripe"]
    payment_method: Annotated[str, StringConstraints(min_length=1, max_length=255, pattern=_TEXT)]

    @field_validator("provider")
    @classmethod
    def _known_provider(cls, value: str) -> str:
        if value not in PAYMENT_PROVIDERS:  # the Literal documents it; this keeps them in step
            raise ValueError(f"unknown payment provider {value!r}")
        return value


class CheckoutRequest(_Strict):
    customer: Customer
    currency: Currency
    items: Annotated[list[Item], Field(min_length=1, max_length=MAX_LINES)]
    shipping_address: ShippingAddress
    payment: Payment

    @field_validator("currency")
    @classmethod
    def _known_currency(cls, value: str) -> str:
        if value not in CURRENCIES:
            raise ValueError(f"{value!r} is not an ISO-4217 currency code")
        return value


class CancelRequest(_Strict):
    reason: Annotated[str, StringConstraints(max_length=200, pattern=r"^[^\x00-\x1f\x7f]*$")] = ""


class RefundRequest(_Strict):
    amount: Annotated[int, Field(strict=True, gt=0, le=MAX_UNIT_AMOUNT * MAX_QUANTITY)]
    reason: Annotated[str, StringConstraints(max_length=200, pattern=r"^[^\x00-\x1f\x7f]*$")] = ""


# --- responses -----------------------------------------------------------------------------

CheckoutStatusName = Literal[
    "PENDING",
    "AWAITING_PAYMENT_ACTION",
    "COMPENSATING",
    "COMPLETED",
    "FAILED",
    "CANCELLED",
    "NEEDS_ATTENTION",
]


class ErrorBody(BaseModel):
    error: str = Field(description="machine-readable error code")
    reason: str = Field(description="human-readable explanation")
    request_id: str | None = None


class FieldError(BaseModel):
    field: str = Field(description="dotted path of the offending field, e.g. items.0.quantity")
    reason: str


class ValidationErrorBody(ErrorBody):
    fields: list[FieldError]


class OverRefundBody(ErrorBody):
    refundable_amount: int


class CheckoutAccepted(BaseModel):
    checkout_id: str
    status: Literal["PENDING"]
    status_url: str


class Amounts(BaseModel):
    subtotal: int | None
    tax: int | None
    shipping: int | None
    total: int | None
    currency: str


class Failure(BaseModel):
    step: str | None
    reason: str | None


class StepModel(BaseModel):
    step: str
    status: str
    attempts: int
    started_at: str | None
    finished_at: str | None
    last_error: str | None


class LastEvent(BaseModel):
    id: str | None
    type: str | None
    at: str | None


class Projection(BaseModel):
    caught_up: bool = Field(
        description="false: the API accepted the checkout but the read model has no row yet"
    )
    last_event: LastEvent | None
    events_applied: int


class CheckoutStatus(BaseModel):
    checkout_id: str
    status: CheckoutStatusName
    amounts: Amounts | None
    order_id: str | None
    failure: Failure | None
    steps: list[StepModel]
    projection: Projection


class CancelAccepted(BaseModel):
    checkout_id: str
    status: Literal["CANCEL_REQUESTED"]
    status_url: str


class RefundAccepted(BaseModel):
    order_id: str
    checkout_id: str
    refund_request_id: str
    amount: int
    currency: str
    status: Literal["REFUND_REQUESTED"]


class WebhookAck(BaseModel):
    received: bool


class Health(BaseModel):
    status: Literal["ok"]


class DependencyCheck(BaseModel):
    ok: bool
    detail: str
    latency_ms: float


class Ready(BaseModel):
    status: Literal["ready", "not_ready"]
    checks: dict[str, DependencyCheck]


def responses(*codes: int, **special: type[BaseModel]) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses` for error statuses: ErrorBody unless a code has its own model
    (`special` maps "422" style names, e.g. s422=ValidationErrorBody)."""
    models: dict[int, type[BaseModel]] = {c: ErrorBody for c in codes}
    for name, model in special.items():
        models[int(name.removeprefix("s"))] = model
    return {code: {"model": model} for code, model in sorted(models.items())}
