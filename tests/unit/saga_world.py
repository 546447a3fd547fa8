"""A pure simulated world for property tests: warehouse, payment provider, tax and shipping
services, a customer doing 3-D Secure, Kafka in between, and the orchestrator loop.

Realistic where the saga relies on it, adversarial everywhere else:
* each adapter handles its requests in order (Kafka partition by checkout_id) but whenever the
  script says, so replies come late, after deadlines, after the saga gave up;
* replies and webhooks are never lost (at-least-once) but are reordered and duplicated;
* effects are real: a reservation holds stock until released or expired, an authorization holds
  money until voided, a capture moves it; the provider refuses to capture a voided payment, void
  a captured one, or refund more than was captured.
The test script is a list of integers drawn by hypothesis; when it runs out the world stops
failing (every request succeeds, every message is delivered) and the clock runs on.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from saga_harness import CID, SHIPPING, T0, TAX, TOTAL, start

from events import messages as m
from events.messages import PaymentSignal, Step
from saga.checkout import CheckoutEvent, Decision, decide, evolve, fold, next_wakeup
from saga.ids import idempotency_key
from saga.policy import DEFAULT_POLICY, Policy
from saga.state import SagaState, Status

PARKED_OR_DONE = frozenset(
    {Status.COMPLETED, Status.FAILED, Status.CANCELLED, Status.NEEDS_ATTENTION}
)
COMMAND_STEP: dict[type, Step] = {
    m.ReserveInventory: Step.RESERVE_INVENTORY,
    m.CalculateTax: Step.CALCULATE_TAX,
    m.QuoteShipping: Step.QUOTE_SHIPPING,
    m.AuthorizePayment: Step.AUTHORIZE_PAYMENT,
    m.CommitInventory: Step.COMMIT_INVENTORY,
    m.CapturePayment: Step.CAPTURE_PAYMENT,
    m.ReleaseInventory: Step.RELEASE_INVENTORY,
    m.VoidPayment: Step.VOID_PAYMENT,
    m.RefundPayment: Step.REFUND_PAYMENT,
}
ADAPTER: dict[type, str] = {
    m.ReserveInventory: "inventory",
    m.CommitInventory: "inventory",
    m.ReleaseInventory: "inventory",
    m.CalculateTax: "tax",
    m.QuoteShipping: "shipping",
    m.AuthorizePayment: "payment",
    m.CapturePayment: "payment",
    m.VoidPayment: "payment",
    m.RefundPayment: "payment",
}
CLOCK_STEPS = (0, 200, 1_000, 5_000, 12_000, 35_000, 120_000, 11 * 60_000)


class ScriptOver(Exception):
    """The drawn script is exhausted: the world stops misbehaving."""


@dataclass
class Script:
    choices: list[int]
    pos: int = 0

    def pick(self, n: int) -> int:
        if self.pos >= len(self.choices):
            raise ScriptOver
        self.pos += 1
        return self.choices[self.pos - 1] % n

    def chance(self, percent: int) -> bool:
        return self.pick(100) < percent


@dataclass
class Stock:
    status: str  # held | committed | released
    expires_at: int


@dataclass
class Money:
    status: str  # action_required | failed | authorized | captured | voided
    captured: int = 0
    refunded: int = 0


@dataclass
class World:
    script: Script
    policy: Policy = DEFAULT_POLICY
    now: int = T0
    failing: bool = True
    state: SagaState | None = None
    log: list[CheckoutEvent] = field(default_factory=list)
    decisions: list[tuple[m.Message, Decision]] = field(default_factory=list)
    issued: list[m.AdapterCommand] = field(default_factory=list)
    queues: dict[str, list[m.AdapterCommand]] = field(default_factory=dict)
    inbox: list[m.Message] = field(default_factory=list)  # replies and webhooks in flight
    stock: dict[str, Stock] = field(default_factory=dict)
    money: dict[str, Money] = field(default_factory=dict)
    counter: int = 0
    violations: list[str] = field(default_factory=list)
    webhooks_sent: list[str] = field(default_factory=list)  # provider event ids

    # --- the orchestrator ----------------------------------------------------------------

    def send(self, message: m.Message) -> Decision:
        before = self.state
        decision = decide(before, message, self.now, self.policy)
        for event in decision.events:
            self.state = evolve(self.state, event)
        if decision.events and decision.state != self.state:
            self.violations.append(f"decision.state is not the fold of its events: {message}")
        self.log.extend(decision.events)
        self.decisions.append((message, decision))
        for command in decision.commands:
            self._check_command(before, command)
            self.issued.append(command)
            self.queues.setdefault(ADAPTER[type(command)], []).append(command)
        return decision

    def _check_command(self, before: SagaState | None, command: m.AdapterCommand) -> None:
        """Safety, checked against the world's truth at the moment a command is issued."""
        step = COMMAND_STEP[type(command)]
        if command.idempotency_key != idempotency_key(CID, step, command.attempt):
            self.violations.append(f"bad idempotency key {command}")
        if isinstance(command, m.CapturePayment):
            state = self.state
            assert state is not None
            res = self.stock.get(state.reservation_id or "")
            live = res is not None and (
                res.status == "committed" or (res.status == "held" and self.now < res.expires_at)
            )
            pay = self.money.get(command.payment_id)
            if not live or pay is None or pay.status not in ("authorized", "captured"):
                self.violations.append(f"capture without live stock and authorization: {res} {pay}")
        if isinstance(command, m.AuthorizePayment):
            reported = {type(e) for e in self.log}
            if m.InventoryReserved not in reported:
                self.violations.append("authorize before any stock was reserved")
        if isinstance(command, m.ReleaseInventory) and command.reservation_id not in self.stock:
            self.violations.append(f"release of unknown reservation {command.reservation_id}")
        if isinstance(command, m.VoidPayment | m.RefundPayment) and (
            command.payment_id not in self.money
        ):
            self.violations.append(f"compensation of unknown payment {command.payment_id}")

    # --- adapters and provider ----------------------------------------------------------

    def _new_id(self, prefix: str) -> str:
        self.counter += 1
        return f"{prefix}-{self.counter}"

    def process(self, adapter: str) -> None:
        """The adapter handles its oldest request now."""
        command = self.queues[adapter].pop(0)
        for stock in self.stock.values():  # time passes for the warehouse too
            if stock.status == "held" and self.now >= stock.expires_at:
                stock.status = "released"
        failure = self._injected_failure(command)
        reply = failure if failure is not None else self._handle(command)
        self.inbox.append(reply)
        if self.failing and self.script.chance(10):
            self.inbox.append(reply)  # redelivered

    def _injected_failure(self, command: m.AdapterCommand) -> m.Message | None:
        if not self.failing or not self.script.chance(25):
            return None
        retryable = self.script.chance(80)
        cid, n = CID, command.attempt
        match command:
            case m.ReserveInventory():
                return m.InventoryReservationRejected(cid, n, "out_of_stock", retryable)
            case m.CalculateTax():
                return m.TaxCalculationFailed(cid, n, "taxjar down", retryable)
            case m.QuoteShipping():
                return m.ShippingQuoteFailed(cid, n, "carrier down", retryable)
            case m.AuthorizePayment():
                return m.PaymentDeclined(cid, n, "stripe", "card_declined", None, retryable)
            case m.CommitInventory():
                return m.InventoryCommitFailed(cid, n, "db down", retryable)
            case m.CapturePayment():
                return m.PaymentCaptureFailed(cid, n, "stripe down", retryable)
            case m.ReleaseInventory():
                return m.InventoryReleaseFailed(cid, n, "db down", not self._broken())
            case m.VoidPayment():
                return m.PaymentVoidFailed(cid, n, "stripe down", not self._broken())
            case m.RefundPayment():
                return m.PaymentRefundFailed(cid, n, "stripe down", not self._broken())
        return None

    def _coin(self, percent: int, every: int) -> bool:
        """A provider behaviour that is not a failure (3-D Secure, an early webhook): drawn from
        the script while it lasts, then on every `every`-th id, so that it also happens while
        the world drains (where the script cannot be drawn from)."""
        if self.failing:
            return self.script.chance(percent)
        return self.counter % every == 0

    def _broken(self) -> bool:
        """Rarely, a compensation fails for good (the saga must park, not give up silently)."""
        return self.script.chance(4)

    def _handle(self, command: m.AdapterCommand) -> m.Message:
        cid, n = CID, command.attempt
        match command:
            case m.ReserveInventory():
                rid = self._new_id("res")
                self.stock[rid] = Stock("held", command.expires_at)
                return m.InventoryReserved(cid, n, rid, command.expires_at)
            case m.CalculateTax():
                return m.TaxCalculated(cid, n, TAX, "USD", "rate_table")
            case m.QuoteShipping():
                return m.ShippingQuoted(cid, n, SHIPPING, "USD", "ups", "ground")
            case m.AuthorizePayment():
                pid = self._new_id("pi")
                if self._coin(30, every=3):
                    self.money[pid] = Money("action_required")
                    if self._coin(40, every=2):
                        # The customer finishes (or fails) 3-D Secure at once: the provider's
                        # webhook is in flight before the adapter's reply.
                        self.customer_acts(pid, not self.failing or self.script.chance(70))
                    return m.PaymentActionRequired(cid, n, "stripe", pid, None)
                self.money[pid] = Money("authorized")
                if self._coin(20, every=2):
                    # Real Stripe also reports a plain manual-capture authorization by webhook
                    # (amount_capturable_updated), racing the reply.
                    self._webhook(PaymentSignal.AUTHORIZED, pid, command.amount)
                return m.PaymentAuthorized(cid, n, "stripe", pid, command.amount, "USD")
            case m.CommitInventory():
                stock = self.stock[command.reservation_id]
                if stock.status in ("held", "committed"):
                    stock.status = "committed"
                    return m.InventoryCommitted(cid, n, command.reservation_id)
                return m.InventoryCommitFailed(cid, n, "reservation expired", False)
            case m.ReleaseInventory():
                self.stock[command.reservation_id].status = "released"
                return m.InventoryReleased(cid, n, command.reservation_id)
            case m.CapturePayment():
                return self._capture(command)
            case m.VoidPayment():
                pay = self.money[command.payment_id]
                if pay.status == "captured":
                    return m.PaymentVoidFailed(cid, n, "already captured", False)
                pay.status = "voided"
                if self.failing and self.script.chance(30):
                    self._webhook(PaymentSignal.CANCELED, command.payment_id, 0)
                return m.PaymentVoided(cid, n, command.payment_id)
            case m.RefundPayment():
                pay = self.money[command.payment_id]
                if command.amount > pay.captured - pay.refunded:
                    return m.PaymentRefundFailed(cid, n, "amount exceeds captured", False)
                pay.refunded += command.amount
                rid = self._new_id("re")
                return m.PaymentRefunded(cid, n, command.payment_id, rid, command.amount, "USD")
        raise AssertionError(command)

    def _capture(self, command: m.CapturePayment) -> m.Message:
        pay = self.money[command.payment_id]
        if pay.status == "authorized":
            pay.status, pay.captured = "captured", command.amount
            if self.failing and self.script.chance(30):
                self._webhook(PaymentSignal.SUCCEEDED, command.payment_id, command.amount)
        if pay.status == "captured":  # capturing twice is a no-op at the provider
            return m.PaymentCaptured(
                CID, command.attempt, "stripe", command.payment_id, pay.captured, "USD"
            )
        return m.PaymentCaptureFailed(CID, command.attempt, f"payment is {pay.status}", False)

    def _webhook(self, kind: PaymentSignal, pid: str, amount: int) -> None:
        event = m.RecordPaymentSignal(CID, "stripe", self._new_id("evt"), kind, pid, amount, "USD")
        self.webhooks_sent.append(event.provider_event_id)
        self.inbox.append(event)
        if self.failing and self.script.chance(15):
            self.inbox.append(event)  # the provider redelivers (our 2xx got lost)

    def customer_acts(self, pid: str, succeeds: bool) -> None:
        """The customer finishes (or fails) 3-D Secure for an intent still waiting for it."""
        pay = self.money[pid]
        if pay.status != "action_required":
            return
        pay.status = "authorized" if succeeds else "failed"
        kind = PaymentSignal.AUTHORIZED if succeeds else PaymentSignal.FAILED
        self._webhook(kind, pid, TOTAL)

    # --- driving ------------------------------------------------------------------------

    def deliver(self, index: int, keep_copy: bool = False) -> None:
        message = self.inbox[index] if keep_copy else self.inbox.pop(index)
        self.send(message)

    def tick(self, advance: int) -> None:
        self.now += advance
        self.send(m.Tick(0, self.now))

    def chaos_step(self) -> None:
        action = self.script.pick(100)
        busy = [name for name, queue in sorted(self.queues.items()) if queue]
        if action < 30 and busy:
            self.process(busy[self.script.pick(len(busy))])
        elif action < 65 and self.inbox:
            self.deliver(self.script.pick(len(self.inbox)), keep_copy=self.script.chance(10))
        elif action < 88:
            self.tick(CLOCK_STEPS[self.script.pick(len(CLOCK_STEPS))])
        elif action < 92:
            self.send(m.CancelCheckout(CID, "customer cancelled"))
        elif action < 97:
            waiting = sorted(p for p, pay in self.money.items() if pay.status == "action_required")
            if waiting:
                self.customer_acts(waiting[self.script.pick(len(waiting))], self.script.chance(70))
        else:
            self.send(start())

    def run(self, max_rounds: int = 400) -> None:
        self.send(start())
        try:
            while True:
                self.chaos_step()
        except ScriptOver:
            pass
        self.failing = False
        self.drain(max_rounds)

    def drain(self, max_rounds: int) -> None:
        """Everything succeeds and arrives, customers finish 3-D Secure, the clock runs on."""
        for _ in range(max_rounds):
            progressed = False
            for name in sorted(self.queues):
                while self.queues[name]:
                    self.process(name)
                    progressed = True
            for pid in sorted(self.money):
                self.customer_acts(pid, succeeds=True)
            while self.inbox:
                self.deliver(0)
                progressed = True
            wakeup = next_wakeup(self.state)
            if wakeup is not None:
                self.tick(max(0, wakeup - self.now))
                progressed = True
            if not progressed:
                return
        raise AssertionError("the saga did not settle once the world stopped failing")

    # --- what the world ends up holding ---------------------------------------------------

    def replayed(self) -> SagaState | None:
        return fold(self.log)
