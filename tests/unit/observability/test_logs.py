"""Every line through infra/logs.py: JSON with level, event, logger, timestamp and the ids the
runtime bound for the record being handled; vendor HTTP chatter demoted to DEBUG."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest
import structlog

from events import messages as m
from events.envelope import Envelope
from infra.logs import bound, configure_logging
from infra.processor import Incoming, log_fields


@pytest.fixture
def stream() -> Iterator[io.StringIO]:
    out = io.StringIO()
    root = logging.getLogger()
    level, handlers = root.level, list(root.handlers)
    yield out
    for handler in list(root.handlers):
        if handler not in handlers:
            root.removeHandler(handler)
    root.setLevel(level)
    structlog.reset_defaults()


def lines(out: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in out.getvalue().splitlines() if line.strip()]


def incoming(checkout_id: str) -> Incoming:
    envelope = Envelope.new(m.CancelCheckout(checkout_id, "x"), occurred_at=1, producer="test")
    return Incoming("checkout.commands", 2, 41, 1, envelope, 10)


def test_a_line_logged_while_a_record_is_handled_is_json_with_its_ids(
    stream: io.StringIO,
) -> None:
    configure_logging("INFO", "json", stream)
    record = incoming("co-json-1")
    with bound(**log_fields(record)):
        logging.getLogger("adapters.payments.service").warning("authorize failed: %s", "503")
    logging.getLogger("infra.processor").info("between records")
    first, second = lines(stream)
    assert first["checkout_id"] == "co-json-1"
    assert first["message_id"] == record.envelope.message_id
    assert first["level"] == "warning" and first["event"] == "authorize failed: 503"
    assert first["logger"] == "adapters.payments.service" and "timestamp" in first
    # The binding ends with the record: the next line is not attributed to it.
    assert "checkout_id" not in second and second["level"] == "info"


def test_extra_fields_and_structlog_loggers_land_in_the_same_json(stream: io.StringIO) -> None:
    configure_logging("INFO", "json", stream)
    logging.getLogger("x").warning("saga failed", extra={"step": "reserve_inventory"})
    structlog.get_logger("y").info("structured", checkout_id="co-2")
    std, native = lines(stream)
    assert std["step"] == "reserve_inventory" and std["event"] == "saga failed"
    assert native == {**native, "checkout_id": "co-2", "event": "structured", "level": "info"}


def test_vendor_http_info_is_debug_and_vendor_warnings_are_json(stream: io.StringIO) -> None:
    configure_logging("INFO", "json", stream)
    httpx_log = logging.getLogger("httpx")
    httpx_log.info("HTTP Request: POST https://api.stripe.com/v1/payment_intents")
    httpx_log.warning("connection pool full")
    (only,) = lines(stream)
    assert only["logger"] == "httpx" and only["level"] == "warning"


def test_vendor_http_info_shows_at_debug(stream: io.StringIO) -> None:
    configure_logging("DEBUG", "json", stream)
    logging.getLogger("stripe").info("Request to Stripe api")
    (only,) = lines(stream)
    assert only["level"] == "debug" and only["event"] == "Request to Stripe api"


def test_console_format_is_not_json_but_keeps_the_ids(stream: io.StringIO) -> None:
    configure_logging("INFO", "console", stream)
    with bound(checkout_id="co-console"):
        logging.getLogger("z").warning("hello")
    text = stream.getvalue()
    assert "co-console" in text and "hello" in text
    with pytest.raises(json.JSONDecodeError):
        json.loads(text.splitlines()[0])


def test_auto_is_json_when_the_stream_is_not_a_terminal(stream: io.StringIO) -> None:
    configure_logging("INFO", "auto", stream)
    logging.getLogger("z").warning("piped")
    assert lines(stream)[0]["event"] == "piped"


def test_uvicorn_colour_copies_are_not_logged(stream: io.StringIO) -> None:
    configure_logging("INFO", "json", stream)
    logging.getLogger("uvicorn.error").info("Started", extra={"color_message": "\x1b[1mStarted"})
    (only,) = lines(stream)
    assert only["event"] == "Started" and "color_message" not in only


def test_uvicorn_lines_reach_our_handler_even_after_uvicorn_configured_its_own(
    stream: io.StringIO,
) -> None:
    """A uvicorn run with its default log config (any in the process) gives its loggers their
    own handlers and stops them propagating; configuring ours takes them back (the full suite
    failed on exactly this order)."""
    import logging.config

    from uvicorn.config import LOGGING_CONFIG

    logging.config.dictConfig(LOGGING_CONFIG)
    logging.getLogger("uvicorn.error").setLevel(logging.WARNING)  # uvicorn's log_level="warning"
    configure_logging("INFO", "json", stream)
    logging.getLogger("uvicorn.error").info("Application startup complete.")
    logging.getLogger("uvicorn.access").info("GET /health 200")
    assert [line["event"] for line in lines(stream)] == [
        "Application startup complete.",
        "GET /health 200",
    ]
