"""`python -m infra.providers_cli register|list`: store a tenant's payment provider account
(adapters/payments/registry.py) from the shell, configured through Settings like everything."""

from __future__ import annotations

import sys
from collections.abc import Sequence

from adapters.payments.registry import (
    PostgresProviderStore,
    ProviderAccount,
    RoutingRule,
    Secret,
    register_provider,
)
from infra.settings import ConfigError, load_settings


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m infra.providers_cli register|list`: DATABASE_URL and PAYMENT_PROVIDERS_KEY
    from Settings; the secret from PAYMENT_PROVIDER_SECRET or stdin, never from the command
    line (argv is visible to every user via ps)."""
    import argparse

    import psycopg

    try:
        settings = load_settings()
    except ConfigError as e:
        print(f"config error: {e}", file=sys.stderr)
        return 2

    parser = argparse.ArgumentParser(prog="python -m infra.providers_cli")
    sub = parser.add_subparsers(dest="command", required=True)
    reg = sub.add_parser("register", help="store a tenant's provider account (and its routes)")
    reg.add_argument("--key", required=True, help='engine-wide name, e.g. "shop-in/razorpay"')
    reg.add_argument("--tenant", required=True, help='tenant id, or "*" for every tenant')
    reg.add_argument("--kind", required=True, choices=["stripe", "razorpay", "paypal"])
    reg.add_argument("--key-id", default="", help="Razorpay key_id or PayPal client id")
    reg.add_argument("--api-base", default=None, help="API base URL (tests, proxies)")
    reg.add_argument("--currency", action="append", default=[], help="route these currencies")
    reg.add_argument("--country", action="append", default=[], help="route these countries")
    reg.add_argument("--fallback", action="append", default=[], help="fallback account keys")
    sub.add_parser("list", help="stored accounts (secrets masked) and routes")
    args = parser.parse_args(argv)

    url = settings.database_url
    if not url:
        print("DATABASE_URL is not set", file=sys.stderr)
        return 2
    from db.migrate import upgrade

    upgrade(url)
    store = PostgresProviderStore.from_key(
        lambda: psycopg.connect(url), settings.payment_providers_key
    )
    if args.command == "list":
        for account in store.load():
            print(repr(account))
        for rule in store.load_routes():
            print(rule)
        return 0
    raw = settings.payment_provider_secret or sys.stdin.readline().strip()
    account = ProviderAccount(
        args.key,
        args.tenant,
        args.kind,
        args.key_id,
        Secret(raw),
        {"api_base": args.api_base} if args.api_base else {},
    )
    routes = None
    if args.currency or args.country or args.fallback:
        # The CLI upserts this account's rule and keeps the tenant's others (in their order).
        rule = RoutingRule(
            args.tenant,
            args.key,
            frozenset(c.upper() for c in args.currency),
            frozenset(c.upper() for c in args.country),
            tuple(args.fallback),
        )
        kept = [
            r for r in store.load_routes() if r.tenant_id == args.tenant and r.provider != args.key
        ]
        routes = [*kept, rule]
    register_provider(store, account, routes)
    print(f"stored {account!r}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
