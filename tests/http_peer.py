"""The common machinery of local vendor peers (TaxJar, EasyPost, ...): a threaded HTTP server on
127.0.0.1:0 whose next answers a test can script ("hang", a status code, ...). Subclasses speak
the vendor's contract in `_handler`."""

from __future__ import annotations

import threading
from collections import deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Self


class ScriptedPeer:
    def __init__(self) -> None:
        self.always: int | str | None = None  # the outcome of every unscripted request
        self.release = threading.Event()  # set to let hanging requests finish
        self._scripted: deque[int | str] = deque()
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.02,), daemon=True
        )

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        raise NotImplementedError

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def script(self, *outcomes: int | str) -> None:
        """The next requests get these outcomes, in order; then `always` applies again."""
        with self._lock:
            self._scripted.extend(outcomes)

    def _next_outcome(self) -> int | str | None:
        with self._lock:
            return self._scripted.popleft() if self._scripted else self.always

    def start(self) -> Self:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.release.set()
        self._server.shutdown()
        self._server.server_close()
