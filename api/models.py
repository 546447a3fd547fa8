"""Request and response bodies: the HTTP contract of ARCHITECTURE.md §6, as pydantic models.

Money is integer minor units. `strict=True` on every amount and quantity: JSON `12.5`, `"12"`
and `true` are refused rather than coerced, because a storefront that sends a float has already
lost the exact amount. Free-text fields refuse control characters (NUL would poison the
PostgreSQL projections downstream, long after the API said 202).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, Protocol

from pydantic import AfterValidator, BaseModel, ConfigDict, Field
from pydantic_core import PydanticCustomError

from events import validation as v

# Re-exported: the limits are the commands' (events.validation), the API only applies them.
MAX_UNIT_AMOUNT = v.MAX_UNIT_AMOUNT
MAX_QUANTITY = v.MAX_QUANTITY
MAX_LINES = v.MAX_LINES


class _Rule(Protocol):
    def check(self, value: Any, /) -> str | None: ...

    def json_schema(self) -> dict[str, Any]: ...


def _doc(rule: _Rule, **extra: Any) -> Any:
    """The rule's bounds in the OpenAPI document (what clients and the fuzzer see)."""
    return Field(json_schema_extra={**rule.json_schema(), **extra})


def _check(rule: _Rule) -> AfterValidator:
    """The rule itself, with its own reason as the field's message: the API and the
    orchestrator refuse the same values with the same words."""

    def check(value: Any) -> Any:
        reason = rule.check(value)
        if reason is not None:
            raise PydanticCustomError("limit", reason)
        return value

    return AfterValidator(check)


Text = Annotated[str, _doc(v.ADDRESS_LINE), _check(v.ADDRESS_LINE)]
Reason = Annotated[str, _doc(v.REASON), _check(v.REASON)]
Currency = Annotated[str, _doc(v.CURRENCY, description="ISO-4217 code"), _check(v.CURRENCY)]


class _Strict(BaseModel):
    # Unknown fields are refused: a typo in a money API should fail loudly, not be ignored.
    model_config = ConfigDict(extra="forbid", frozen=True)


class Customer(_Strict):
    id: Annotated[str, _doc(v.CUSTOMER_ID), _check(v.CUSTOMER_ID)]
    email: Annotated[str, _doc(v.EMAIL), _check(v.EMAIL)]


class Item(_Strict):
    sku: Annotated[str, _doc(v.SKU), _check(v.SKU)]
    # strict: JSON 12.5, "12" and true are refused rather than coerced.
    quantity: Annotated[int, Field(strict=True), _doc(v.QUANTITY), _check(v.QUANTITY)]
    unit_amount: Annotated[int, Field(strict=True), _doc(v.UNIT_AMOUNT), _check(v.UNIT_AMOUNT)]


class ShippingAddress(_Strict):
    line1: Text
    city: Text
    state: Annotated[str, _doc(v.STATE), _check(v.STATE)] = ""
    postal_code: Annotated[str, _doc(v.POSTAL_CODE), _check(v.POSTAL_CODE)]
    country: Annotated[
        str, _doc(v.COUNTRY, description="ISO-3166-1 alpha-2 code"), _check(v.COUNTRY)
    ]


class Payment(_Strict):
    provider: Annotated[str, _doc(v.PAYMENT_PROVIDER), _check(v.PAYMENT_PROVIDER)]
    payment_method: Annotated[str, _doc(v.PAYMENT_METHOD), _check(v.PAYMENT_METHOD)]


class CheckoutRequest(_Strict):
    customer: Customer
    currency: Currency
    items: Annotated[list[Item], _doc(v.LINES), _check(v.LINES)]
    shipping_address: ShippingAddress
    payment: Payment


class CancelRequest(_Strict):
    reason: Reason = ""


class RefundRequest(_Strict):
    amount: Annotated[int, Field(strict=True), _doc(v.REFUND_AMOUNT), _check(v.REFUND_AMOUNT)]
    reason: Reason = ""


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


class NextAction(BaseModel):
    """What the storefront hands to the provider's client library to finish the payment action
    (Stripe.js `handleNextAction({clientSecret})`, or a redirect for `redirect_to_url`)."""

    provider: str
    kind: str | None
    client_secret: str | None = None
    redirect_url: str | None = None


class CheckoutStatus(BaseModel):
    checkout_id: str
    status: CheckoutStatusName
    amounts: Amounts | None
    order_id: str | None
    failure: Failure | None
    steps: list[StepModel]
    projection: Projection
    # only while AWAITING_PAYMENT_ACTION; the client secret only for the owning storefront
    next_action: NextAction | None = None


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
