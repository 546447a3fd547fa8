"""Payment providers per tenant: accounts with credentials, routing rules, encrypted storage.

* An **account** is one provider account of one tenant (`ProviderAccount`): its key (the name
  the rest of the engine uses, e.g. "stripe" or "shop-in/razorpay"), kind, public key id and a
  `Secret`. Secrets never appear in repr/str/logs/exception messages; they are revealed only
  where a gateway is built.
* **Routing** (`ProviderRouter.route`) picks the account for an authorization: the first rule of
  the tenant matching the currency and country (rules of tenant "*" apply to every tenant),
  its primary unless that provider's circuit breaker is open, else its first available
  fallback. No matching rule: the provider the storefront asked for. Capture, void and refund
  never route: they go to the account that authorized (the reply names it and the saga keeps
  it), because a payment only exists at one provider.
  A fallback is only configured where the payment method works at both providers (e.g. a
  vault/network token); a Stripe `pm_...` id cannot be charged at Razorpay.
* **Storage** (`PostgresProviderStore`, table `payment_providers`): the secret is encrypted with
  Fernet (AES-128-CBC + HMAC-SHA256) under a key the composition root hands in
  (`PAYMENT_PROVIDERS_KEY`, read by infra/settings.py), so a database dump or replica alone
  reveals no credentials.
"""

from __future__ import annotations

import hmac
import logging
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from cryptography.fernet import Fernet, InvalidToken

from adapters.payments.attempt_log import AttemptLog
from adapters.payments.port import PaymentGateway

log = logging.getLogger(__name__)

ANY_TENANT = "*"
KEY_ENV = "PAYMENT_PROVIDERS_KEY"


class Secret:
    """A credential. Prints as a mask everywhere; `reveal()` is the only way to the value."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        if not value:
            raise ValueError("empty secret")
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('********')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and hmac.compare_digest(self._value, other._value)

    def __hash__(self) -> int:
        return hash(("Secret", len(self._value)))

    def __reduce__(self) -> Any:
        # Pickling (multiprocessing, caches) would write the plain value somewhere unplanned.
        raise TypeError("a Secret cannot be pickled")


@dataclass(frozen=True, slots=True)
class ProviderAccount:
    key: str  # unique engine-wide: what commands and replies name as `provider`
    tenant_id: str
    kind: str  # "stripe", "razorpay" or "paypal"
    key_id: str  # public part (Razorpay key_id, PayPal client id; empty for Stripe)
    secret: Secret = field(repr=False)
    options: Mapping[str, str] = field(default_factory=dict)  # e.g. api_base

    def __repr__(self) -> str:
        return (
            f"ProviderAccount(key={self.key!r}, tenant_id={self.tenant_id!r}, "
            f"kind={self.kind!r}, key_id={self.key_id!r}, secret=Secret('********'))"
        )


@dataclass(frozen=True, slots=True)
class RoutingRule:
    tenant_id: str  # or ANY_TENANT
    provider: str  # account key of the primary
    currencies: frozenset[str] = frozenset()  # upper-case ISO-4217; empty: any
    countries: frozenset[str] = frozenset()  # ISO-3166 alpha-2; empty: any
    fallbacks: tuple[str, ...] = ()

    def matches(self, tenant_id: str, currency: str, country: str) -> bool:
        return (
            self.tenant_id in (tenant_id, ANY_TENANT)
            and (not self.currencies or currency.upper() in self.currencies)
            and (not self.countries or country.upper() in self.countries)
        )


class NoProvider(LookupError):
    """No account can take this payment (none registered for what the storefront asked)."""


class ProviderRouter:
    def __init__(self, rules: Iterable[RoutingRule] = ()) -> None:
        self._rules = list(rules)

    def add(self, rule: RoutingRule) -> None:
        self._rules.append(rule)

    def route(
        self,
        *,
        tenant_id: str,
        currency: str,
        country: str,
        requested: str,
        available: Callable[[str], bool],
    ) -> str:
        """The account key for a new authorization; `available(key)` is False while that
        provider's breaker is open."""
        for rule in self._rules:
            if not rule.matches(tenant_id, currency, country):
                continue
            for candidate in (rule.provider, *rule.fallbacks):
                if available(candidate):
                    if candidate != rule.provider:
                        log.warning(
                            "payment routed to fallback",
                            extra={"primary": rule.provider, "fallback": candidate},
                        )
                    return candidate
            # Every candidate is down: the primary's open breaker answers "retry later".
            return rule.provider
        return requested


class ProviderRegistry:
    """The accounts and their gateways, built once from stored or configured credentials."""

    def __init__(self, build: Callable[[ProviderAccount], PaymentGateway]) -> None:
        self._build = build
        self._accounts: dict[str, ProviderAccount] = {}
        self._gateways: dict[str, PaymentGateway] = {}
        self.router = ProviderRouter()

    def __repr__(self) -> str:
        return f"ProviderRegistry(accounts={sorted(self._accounts)})"

    def register(self, account: ProviderAccount) -> PaymentGateway:
        gateway = self._build(account)
        self._accounts[account.key] = account
        self._gateways[account.key] = gateway
        log.info("payment provider registered", extra={"provider": account.key})
        return gateway

    def add_rule(self, rule: RoutingRule) -> None:
        for key in (rule.provider, *rule.fallbacks):
            if key not in self._accounts:
                raise NoProvider(f"rule names unregistered provider {key!r}")
        self.router.add(rule)

    @property
    def gateways(self) -> Mapping[str, PaymentGateway]:
        return dict(self._gateways)

    def account(self, key: str) -> ProviderAccount:
        return self._accounts[key]


def build_gateway(
    account: ProviderAccount, attempts: AttemptLog | None = None, *, paypal_index: Any = None
) -> PaymentGateway:
    """The one place a secret is revealed: handed to the provider's client. `attempts` is the
    durable authorization-attempt log for providers that authorize by idempotency key (Stripe);
    without it such a gateway keeps its log in memory, for the process's lifetime only.
    `paypal_index`: the `OrderIndex` PayPal gateways share (default: one in-memory index per
    gateway)."""
    if account.kind == "stripe":
        from adapters.payments.stripe_gateway import StripeGateway

        return StripeGateway(
            account.secret.reveal(),
            api_base=account.options.get("api_base"),
            provider_name=account.key,
            attempts=attempts,
        )
    if account.kind == "razorpay":
        from adapters.payments.razorpay_gateway import RazorpayGateway

        if not account.key_id:
            raise NoProvider(f"razorpay account {account.key!r} has no key_id")
        return RazorpayGateway(
            account.key_id,
            account.secret.reveal(),
            api_base=account.options.get("api_base"),
            provider_name=account.key,
        )
    if account.kind == "paypal":
        from adapters.payments.paypal_gateway import PayPalGateway

        if not account.key_id:
            raise NoProvider(f"paypal account {account.key!r} has no client id (key_id)")
        return PayPalGateway(
            account.key_id,
            account.secret.reveal(),
            api_base=account.options.get("api_base"),
            provider_name=account.key,
            index=paypal_index,
        )
    raise NoProvider(f"no gateway for provider kind {account.kind!r}")


# --- encrypted storage ----------------------------------------------------------------------


class PostgresProviderStore:
    """Accounts at rest: the secret column holds a Fernet token, never the secret."""

    def __init__(self, connect: Callable[[], Any], encryption_key: Secret) -> None:
        self._connect = connect
        self._fernet = Fernet(encryption_key.reveal().encode())
        self._lock = threading.Lock()

    @classmethod
    def from_key(cls, connect: Callable[[], Any], raw: str | None) -> PostgresProviderStore:
        """`raw`: the configured PAYMENT_PROVIDERS_KEY (Settings.payment_providers_key)."""
        if not raw:
            raise RuntimeError(f"{KEY_ENV} is not set: cannot decrypt payment credentials")
        return cls(connect, Secret(raw))

    def __repr__(self) -> str:
        return "PostgresProviderStore(key=Secret('********'))"

    def put(self, account: ProviderAccount) -> None:
        from psycopg.types.json import Jsonb

        token = self._fernet.encrypt(account.secret.reveal().encode())
        with self._connect() as conn:
            conn.execute(
                """
                INSERT INTO payment_providers (key, tenant_id, kind, key_id, secret_ciphertext,
                                               options)
                VALUES (%s, %s, %s, %s, %s, %s)
                ON CONFLICT (key) DO UPDATE SET tenant_id = EXCLUDED.tenant_id,
                    kind = EXCLUDED.kind, key_id = EXCLUDED.key_id,
                    secret_ciphertext = EXCLUDED.secret_ciphertext,
                    options = EXCLUDED.options, updated_at = now()
                """,
                (
                    account.key,
                    account.tenant_id,
                    account.kind,
                    account.key_id,
                    token,
                    Jsonb(dict(account.options)),
                ),
            )

    def put_routes(self, tenant_id: str, rules: Iterable[RoutingRule]) -> None:
        """Replace the tenant's routing rules (in order) in one transaction, so the router
        never loads half of an operator's change."""
        rules = list(rules)
        if any(r.tenant_id != tenant_id for r in rules):
            raise ValueError(f"every rule must belong to tenant {tenant_id!r}")
        with self._connect() as conn, conn.transaction():
            conn.execute("DELETE FROM payment_routes WHERE tenant_id = %s", (tenant_id,))
            for position, rule in enumerate(rules):
                conn.execute(
                    "INSERT INTO payment_routes (tenant_id, position, provider, currencies,"
                    " countries, fallbacks) VALUES (%s, %s, %s, %s, %s, %s)",
                    (
                        tenant_id,
                        position,
                        rule.provider,
                        sorted(rule.currencies),
                        sorted(rule.countries),
                        list(rule.fallbacks),
                    ),
                )

    def load_routes(self) -> list[RoutingRule]:
        """Every rule, a tenant's own before those of every tenant ("*"): the router takes the
        first match, so a tenant's choice overrides the platform default."""
        with self._connect() as conn:
            rows = conn.execute(
                "SELECT tenant_id, provider, currencies, countries, fallbacks FROM payment_routes"
                " ORDER BY tenant_id = %s, tenant_id, position",
                (ANY_TENANT,),
            ).fetchall()
        return [
            RoutingRule(
                tenant,
                provider,
                frozenset(c.upper() for c in currencies),
                frozenset(c.upper() for c in countries),
                tuple(fallbacks),
            )
            for tenant, provider, currencies, countries, fallbacks in rows
        ]

    def has_routes(self, tenant_id: str) -> bool:
        with self._connect() as conn:
            row = conn.execute(
                "SELECT EXISTS (SELECT 1 FROM payment_routes WHERE tenant_id = %s)", (tenant_id,)
            ).fetchone()
        return bool(row and row[0])

    def load(self, tenant_id: str | None = None) -> list[ProviderAccount]:
        query = "SELECT key, tenant_id, kind, key_id, secret_ciphertext, options"
        query += " FROM payment_providers"
        params: tuple[Any, ...] = ()
        if tenant_id is not None:
            query += " WHERE tenant_id = %s"
            params = (tenant_id,)
        with self._connect() as conn:
            rows = conn.execute(query + " ORDER BY key", params).fetchall()
        accounts = []
        for key, tenant, kind, key_id, token, options in rows:
            try:
                secret = self._fernet.decrypt(bytes(token)).decode()
            except InvalidToken as e:
                # Wrong or rotated key: say which account, never what was stored.
                raise RuntimeError(f"cannot decrypt credentials of provider {key!r}") from e
            accounts.append(
                ProviderAccount(key, tenant, kind, key_id, Secret(secret), dict(options or {}))
            )
        return accounts


# --- operator entry points ------------------------------------------------------------------


def register_provider(
    store: PostgresProviderStore,
    account: ProviderAccount,
    routes: Iterable[RoutingRule] | None = None,
) -> None:
    """Register (or update: a rotated secret) one tenant's provider account.

    `routes=None` keeps the tenant's routing rules, except that a tenant without any gets one
    catch-all rule to this account ("this tenant's payments go here"). Passing `routes`
    replaces the tenant's rules with them, in order. Takes effect when the payment workers
    start (they load the table once; restart them to apply a change).

        from adapters.payments.registry import *
        store = PostgresProviderStore.from_key(lambda: psycopg.connect(DATABASE_URL), KEY)
        register_provider(
            store,
            ProviderAccount("shop-in/razorpay", "shop-in", "razorpay", "rzp_live_...",
                            Secret(RAZORPAY_KEY_SECRET)),
            [RoutingRule("shop-in", "shop-in/razorpay", currencies=frozenset({"INR"}))],
        )

    or from a shell: `python -m infra.providers_cli register --help`. The tables come
    from the schema history (`saga db upgrade`, db/migrations).
    """
    build_gateway(account)  # refuse an account we could not use (unknown kind, no key_id)
    store.put(account)
    if routes is not None:
        store.put_routes(account.tenant_id, routes)
    elif not store.has_routes(account.tenant_id):
        store.put_routes(account.tenant_id, [RoutingRule(account.tenant_id, account.key)])
    log.info(
        "payment provider stored",
        extra={"provider": account.key, "tenant_id": account.tenant_id, "kind": account.kind},
    )


def stored_providers(
    connect: Callable[[], Any], encryption_key: str | None = None
) -> tuple[list[ProviderAccount], list[RoutingRule]]:
    """Accounts and rules from `payment_providers`/`payment_routes`; empty when the table does
    not exist or has no rows. Rows without `PAYMENT_PROVIDERS_KEY` are an error, not a silent
    fall-back to the default provider: that would send tenants' payments to the wrong account."""
    with connect() as conn:
        row = conn.execute("SELECT to_regclass('payment_providers') IS NOT NULL").fetchone()
        if not (row and row[0]):
            return [], []
        count = conn.execute("SELECT count(*) FROM payment_providers").fetchone()
    if not count or not count[0]:
        return [], []
    store = PostgresProviderStore.from_key(connect, encryption_key)
    return store.load(), store.load_routes()
