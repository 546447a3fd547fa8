"""Circuit breaker states, published from the worker processes that hold them to Redis, so
`saga status` and the console can show them.

Breakers are in-memory pybreaker objects in each worker; nothing else can see them. Each worker
instance keeps one Redis hash:

    key    ops:breakers:<instance>     (instance = "<role>@<host>:<pid>")
    field  <breaker name>              (e.g. "stripe", "taxjar", "easypost")
    value  JSON {"breaker", "state": "closed"|"open"|"half-open", "since_ms", "instance",
                 "fail_counter"}

The hash has a TTL (`TTL_S`) refreshed every `REFRESH_S` while the worker lives, so a crashed or
stopped worker's breakers vanish on their own instead of claiming a state nobody holds any more.
A state change is written at once from pybreaker's listener; a Redis hiccup is logged and never
fails the call the breaker guards.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pybreaker
import redis

from adapters.resilience import on_new_breaker

log = logging.getLogger(__name__)

KEY_PREFIX = "ops:breakers:"
TTL_S = 60
REFRESH_S = 15.0


@dataclass(frozen=True, slots=True)
class BreakerState:
    breaker: str
    state: str
    since_ms: int
    instance: str
    fail_counter: int = 0


def instance_name(role: str) -> str:
    return f"{role}@{socket.gethostname()}:{os.getpid()}"


class BreakerPublisher(pybreaker.CircuitBreakerListener):
    """Listens on every breaker of this process and mirrors their states into Redis."""

    def __init__(
        self,
        client: redis.Redis,
        instance: str,
        *,
        clock: Callable[[], float] = time.time,
        refresh_s: float = REFRESH_S,
    ) -> None:
        self._client = client
        self._instance = instance
        self._key = KEY_PREFIX + instance
        self._clock = clock
        self._refresh_s = refresh_s
        self._since: dict[str, int] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._unhook: Callable[[], None] | None = None

    def start(self) -> BreakerPublisher:
        self._unhook = on_new_breaker(self.watch)
        self._thread = threading.Thread(target=self._keep_alive, name="breaker-states", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._unhook is not None:
            self._unhook()
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        try:
            self._client.delete(self._key)  # a clean stop holds no breaker any more
        except redis.RedisError as e:
            log.warning("could not remove %s: %s", self._key, e)

    def watch(self, breaker: pybreaker.CircuitBreaker) -> None:
        breaker.add_listener(self)
        self._write(breaker, breaker.current_state)

    def state_change(
        self,
        cb: pybreaker.CircuitBreaker,
        old_state: pybreaker.CircuitBreakerState | None,
        new_state: pybreaker.CircuitBreakerState,
    ) -> None:
        self._since[str(cb.name)] = int(self._clock() * 1000)
        self._write(cb, new_state.name)

    def _write(self, breaker: pybreaker.CircuitBreaker, state: str) -> None:
        name = str(breaker.name)
        since = self._since.setdefault(name, int(self._clock() * 1000))
        value = BreakerState(name, str(state), since, self._instance, breaker.fail_counter)
        try:
            pipe = self._client.pipeline()
            pipe.hset(self._key, name, json.dumps(_as_dict(value)))
            pipe.expire(self._key, TTL_S)
            pipe.execute()
        except redis.RedisError as e:
            log.warning("breaker %s is %s; could not publish it: %s", name, state, e)

    def _keep_alive(self) -> None:
        while not self._stop.wait(self._refresh_s):
            try:
                self._client.expire(self._key, TTL_S)
            except redis.RedisError as e:
                log.warning("could not refresh %s: %s", self._key, e)


def _as_dict(state: BreakerState) -> dict[str, Any]:
    return {
        "breaker": state.breaker,
        "state": state.state,
        "since_ms": state.since_ms,
        "instance": state.instance,
        "fail_counter": state.fail_counter,
    }


def publish_breakers(redis_url: str | None, role: str) -> BreakerPublisher | None:
    """Start publishing this process's breakers (none without a Redis to publish to)."""
    if not redis_url:
        return None
    client = redis.Redis.from_url(redis_url, socket_timeout=2, socket_connect_timeout=2)
    return BreakerPublisher(client, instance_name(role)).start()


def read_breakers(client: redis.Redis) -> list[BreakerState]:
    """Every live worker's breakers, by breaker then instance."""
    found: list[BreakerState] = []
    for key in client.scan_iter(match=KEY_PREFIX + "*", count=100):
        for raw in client.hgetall(key).values():
            try:
                data = json.loads(raw)
                found.append(
                    BreakerState(
                        str(data["breaker"]),
                        str(data["state"]),
                        int(data["since_ms"]),
                        str(data["instance"]),
                        int(data.get("fail_counter", 0)),
                    )
                )
            except (ValueError, KeyError, TypeError):
                continue  # written by another version: skip rather than fail the whole view
    return sorted(found, key=lambda b: (b.breaker, b.instance))
