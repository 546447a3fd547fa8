"""`python -m infra.embedded.localstripe_server --port N`: localstripe on 127.0.0.1 only.

localstripe's own `start()` binds `::` (every interface, IPv4 and IPv6) and has no host option,
so anyone on the network could create charges or read the emulator's customers. This builds
the same aiohttp app and serves it on loopback.
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Sequence

HOST = "127.0.0.1"


def main(argv: Sequence[str] | None = None) -> None:
    from aiohttp import web
    from localstripe import server

    parser = argparse.ArgumentParser(prog="python -m infra.embedded.localstripe_server")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--from-scratch", action="store_true")
    args = parser.parse_args(argv)
    if not args.from_scratch:
        server.store.try_load_from_disk()
    access = logging.getLogger("aiohttp.access")
    access.setLevel(logging.DEBUG)
    access.addHandler(logging.StreamHandler())
    web.run_app(server.app, host=HOST, port=args.port, access_log=access, print=None)


if __name__ == "__main__":
    main()
