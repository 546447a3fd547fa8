"""Process-wide logging set-up for the CLI's long-running roles (workers, API, `saga run`).

Every line goes through structlog's `ProcessorFormatter`, our own stdlib `logging` calls and the
vendors' alike, so with LOG_FORMAT=json each line is one JSON object a log shipper can index:
`timestamp`, `level`, `logger`, `event`, plus whatever the runtime bound for the record being
handled (`checkout_id`, `message_id`: infra/processor.py binds them with structlog.contextvars)
and what a call passed in `extra=` (the orchestrator's `step`, `reason_code`, ...).

Vendor HTTP clients log every request at INFO (the stripe SDK's "Request to Stripe api" and
"Stripe API response" lines, httpx's "HTTP Request: ..."): 3,968 of the payment worker's 3,973
lines in issue 13. Those are DEBUG material, so their INFO records are demoted to DEBUG: hidden at
the default level, still there with LOG_LEVEL=DEBUG. Their warnings and errors are left alone.
What a failed payment call means is logged once, by the payment service, at WARNING.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import MutableMapping
from typing import IO, Any

import structlog

# Loggers of the HTTP clients under our payment, tax and shipping adapters.
VENDOR_HTTP_LOGGERS = ("stripe", "httpx", "httpcore", "urllib3", "requests")

LOG_FORMATS = ("auto", "json", "console")


class DemoteToDebug(logging.Filter):
    """Turns a logger's INFO records into DEBUG ones, dropped unless DEBUG is enabled."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno != logging.INFO:
            return True
        record.levelno, record.levelname = logging.DEBUG, logging.getLevelName(logging.DEBUG)
        # A logger filter runs after the INFO level check; the record is DEBUG now, so it is
        # kept only where DEBUG would have been.
        return logging.getLogger(record.name).isEnabledFor(logging.DEBUG)


_DEMOTE = DemoteToDebug()


def quiet_vendor_http_logs() -> None:
    """Idempotent: the same filter object is added once per logger."""
    for name in VENDOR_HTTP_LOGGERS:
        logger = logging.getLogger(name)
        if _DEMOTE not in logger.filters:
            logger.addFilter(_DEMOTE)


def _shared_processors() -> list[Any]:
    return [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]


def _drop_color_message(
    _logger: Any, _name: str, event: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    # uvicorn passes an ANSI-coloured copy of each message as an extra field.
    event.pop("color_message", None)
    return event


def formatter(fmt: str, stream: IO[str] | None = None) -> structlog.stdlib.ProcessorFormatter:
    """The formatter of every handler: JSON lines, or the console renderer for people."""
    if fmt == "auto":
        target = stream if stream is not None else sys.stderr
        fmt = "console" if target.isatty() else "json"
    renderer: Any
    if fmt == "json":
        renderer = structlog.processors.JSONRenderer()
        tail: list[Any] = [structlog.processors.format_exc_info]
    else:
        renderer = structlog.dev.ConsoleRenderer(colors=False)
        tail = []
    return structlog.stdlib.ProcessorFormatter(
        # Records from stdlib loggers (ours and the vendors'): their `extra=` fields become
        # keys of the line, as structlog's own key-value calls would.
        foreign_pre_chain=[
            *_shared_processors(),
            structlog.stdlib.ExtraAdder(),
            _drop_color_message,
        ],
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            *tail,
            renderer,
        ],
    )


_OWN_HANDLER_LOGGERS = ("uvicorn", "uvicorn.error", "uvicorn.access")


def configure_logging(level: str | int, fmt: str = "auto", stream: IO[str] | None = None) -> None:
    """Route stdlib logging and structlog through one handler on `stream` (stderr)."""
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    handler.setFormatter(formatter(fmt, stream))
    root = logging.getLogger()
    for old in list(root.handlers):
        if getattr(old, "_saga_handler", False):
            root.removeHandler(old)
    handler._saga_handler = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(level)
    # uvicorn's own dictConfig (any uvicorn run without log_config=None in this process) gives
    # its loggers their handlers and stops them propagating, and its log_level sets their
    # levels: their lines would bypass ours or be dropped before reaching the root's level.
    for name in _OWN_HANDLER_LOGGERS:
        named = logging.getLogger(name)
        named.handlers.clear()
        named.setLevel(logging.NOTSET)
        named.propagate, named.disabled = True, False
    structlog.configure(
        processors=[
            *_shared_processors(),
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    quiet_vendor_http_logs()


class bound:  # lower case: it reads as the context-manager function it replaced
    """Every line logged inside (on this thread or context) carries `values`.

    Entered once per input on every worker's hot path: structlog's own `bound_contextvars`
    reads the whole context on entry and again on exit (25 us a time); resetting the tokens
    its `bind_contextvars` returns restores the same values in 7 (ADR 0023)."""

    __slots__ = ("_tokens", "_values")

    def __init__(self, **values: Any) -> None:
        self._values = values

    def __enter__(self) -> None:
        self._tokens = structlog.contextvars.bind_contextvars(**self._values)

    def __exit__(self, *_: object) -> None:
        structlog.contextvars.reset_contextvars(**self._tokens)
