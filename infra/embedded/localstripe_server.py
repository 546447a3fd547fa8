"""`python -m infra.embedded.localstripe_server --port N`: localstripe on 127.0.0.1 only,
behind our Idempotency-Key layer, without its per-write pickle.

localstripe's own `start()` binds `::` (every interface, IPv4 and IPv6) and has no host option,
so anyone on the network could create charges or read the emulator's customers. This builds
the same aiohttp app and serves it on loopback, with three emulator fixes of ours:

- `IdempotencyLayer` (infra/embedded/idempotency_layer.py): localstripe ignores
  Idempotency-Key; Stripe's contract for it is what our payment gateway relies on.
- No persistence: localstripe pickles its whole store to `/tmp/localstripe.pickle` after every
  write, which makes each write O(size of the store) (seeding 10,000 PaymentIntents took
  minutes) and shares one file between every instance on the machine. Nothing reads it back:
  the launcher always starts `--from-scratch` (the emulator's objects and idempotency keys
  live and die with the process, as one account would), so writing it is pure cost.
- `created` filters (`gt`, `gte`, `lt`, `lte`) on `GET /v1/payment_intents`, which Stripe
  documents and localstripe rejects as an unexpected parameter; the gateway's bounded lookup of
  an old ambiguous attempt uses it.
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Sequence
from typing import Any

HOST = "127.0.0.1"


def _no_disk_persistence() -> None:
    from localstripe import resources

    def dump_to_disk(self: Any) -> None:  # see the module docstring: O(n) per write, unread
        return None

    resources.Store.dump_to_disk = dump_to_disk


def _indexed_store() -> None:
    """Listings and refund totals in O(matching objects), not O(everything in the store).

    localstripe lists a type by scanning every key of its one store (`key.startswith(...)`), and
    a charge's `refunds`, `amount_refunded` and `refunded` each list all refunds that way:
    exporting one PaymentIntent with its charge scanned the whole store six times, so every
    create and retrieve grew with the account's history (profiled: 95 % of the emulator's time
    at 3,000 intents). Real Stripe has no such cost, so it is an emulator artefact we remove:
    the store keeps its keys per object type, and refunds are indexed by charge."""
    from localstripe import resources
    from localstripe.errors import UserError

    store_cls, store = resources.Store, resources.store
    kinds: dict[str, dict[str, None]] = {}
    refunds_of: dict[str, list[str]] = {}

    def setitem(self: Any, key: str, value: Any) -> None:
        dict.__setitem__(self, key, value)
        kinds.setdefault(key.split(":", 1)[0], {})[key] = None

    def delitem(self: Any, key: str) -> None:
        dict.__delitem__(self, key)
        kinds.get(key.split(":", 1)[0], {}).pop(key, None)

    def clear(self: Any) -> None:
        dict.clear(self)
        kinds.clear()
        refunds_of.clear()

    store_cls.__setitem__ = setitem
    store_cls.__delitem__ = delitem
    store_cls.clear = clear
    for key in list(store):  # anything made at import time
        kinds.setdefault(key.split(":", 1)[0], {})[key] = None

    def list_all(
        cls: Any, url: str, limit: Any = None, starting_after: Any = None, **kw: Any
    ) -> Any:
        if kw:
            raise UserError(400, "Unexpected " + ", ".join(kw.keys()))
        li = resources.List(url, limit=limit, starting_after=starting_after)
        li._list = [store[k] for k in kinds.get(cls.object, {})]
        return li

    resources.StripeObject._api_list_all = classmethod(list_all)

    refund_init = resources.Refund.__init__

    def init_refund(self: Any, *args: Any, **kwargs: Any) -> None:
        refund_init(self, *args, **kwargs)
        refunds_of.setdefault(self.charge, []).append("refund:" + self.id)

    resources.Refund.__init__ = init_refund

    def charge_refunds(self: Any) -> Any:
        li = resources.List("/v1/charges/" + self.id + "/refunds")
        found = [store[k] for k in refunds_of.get(self.id, ()) if k in store]
        li._list = sorted(found, key=lambda r: r.date, reverse=True)
        return li

    resources.Charge.refunds = property(charge_refunds)


def _payment_intent_created_filter() -> None:
    from localstripe.errors import UserError
    from localstripe.resources import PaymentIntent, try_convert_to_int

    def original(cls: Any, url: str, **kwargs: Any) -> Any:
        return super(PaymentIntent, cls)._api_list_all(url, **kwargs)

    tests = {
        "gt": lambda c, v: c > v,
        "gte": lambda c, v: c >= v,
        "lt": lambda c, v: c < v,
        "lte": lambda c, v: c <= v,
    }

    def list_all(cls: Any, url: str, created: Any = None, **kwargs: Any) -> Any:
        li = original(cls, url, **kwargs)
        if created is None:
            return li
        if not isinstance(created, dict):  # `created=<ts>` means exactly that second
            created = {"gte": created, "lte": created}
        try:
            bounds = [(tests[op], int(try_convert_to_int(v))) for op, v in created.items()]
        except (KeyError, TypeError, ValueError):
            raise UserError(400, "Bad request") from None
        li._list = [o for o in li._list if all(t(o.created, v) for t, v in bounds)]
        return li

    PaymentIntent._api_list_all = classmethod(list_all)


def build_app(*, layer: Any = None) -> Any:
    """localstripe's app with our fixes; `layer` defaults to a fresh IdempotencyLayer."""
    from localstripe import server

    from infra.embedded.idempotency_layer import IdempotencyLayer

    _no_disk_persistence()
    _indexed_store()
    _payment_intent_created_filter()
    (layer or IdempotencyLayer()).install(server.app)
    return server.app


def main(argv: Sequence[str] | None = None) -> None:
    from aiohttp import web

    parser = argparse.ArgumentParser(prog="python -m infra.embedded.localstripe_server")
    parser.add_argument("--port", type=int, required=True)
    # Always from scratch (nothing is persisted, see above); the flag stays for old callers.
    parser.add_argument("--from-scratch", action="store_true")
    args = parser.parse_args(argv)
    app = build_app()
    access = logging.getLogger("aiohttp.access")
    access.setLevel(logging.DEBUG)
    access.addHandler(logging.StreamHandler())
    web.run_app(app, host=HOST, port=args.port, access_log=access, print=None)


if __name__ == "__main__":
    main()
