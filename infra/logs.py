"""Process-wide logging set-up for the CLI's long-running roles (workers, API, `saga run`).

Vendor HTTP clients log every request at INFO (the stripe SDK's "Request to Stripe api" and
"Stripe API response" lines, httpx's "HTTP Request: ..."): 3,968 of the payment worker's 3,973
lines in issue 13. Those are DEBUG material, so their INFO records are demoted to DEBUG: hidden at
the default level, still there with LOG_LEVEL=DEBUG. Their warnings and errors are left alone.
What a failed payment call means is logged once, by the payment service, at WARNING.
"""

from __future__ import annotations

import logging
import sys

# Loggers of the HTTP clients under our payment, tax and shipping adapters.
VENDOR_HTTP_LOGGERS = ("stripe", "httpx", "httpcore", "urllib3", "requests")

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"


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


def configure_logging(level: str | int) -> None:
    logging.basicConfig(level=level, stream=sys.stderr, format=LOG_FORMAT)
    quiet_vendor_http_logs()
