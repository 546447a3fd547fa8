"""Redis implementations of the API's idempotency store, rate limiter and accepted-checkout
registry. Each multi-step decision is one Lua script, so two API replicas racing on the same key
see one atomic outcome (Redis runs a script without interleaving other commands)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

from api.ports import Accepted, RateDecision, Reservation

IDEMPOTENCY_TTL_S = 24 * 3600
# A reservation whose holder died (crash between reserve and complete) blocks the key only this
# long; the retry then re-runs and, because checkout ids are derived from the key, produces the
# same checkout again (deduplicated by the saga) instead of a second one.
PENDING_TTL_S = 60
ACCEPTED_TTL_S = 7 * 24 * 3600

_RESERVE = """
local fp = redis.call('HGET', KEYS[1], 'fp')
if not fp then
  redis.call('HSET', KEYS[1], 'fp', ARGV[1], 'state', 'pending')
  redis.call('EXPIRE', KEYS[1], ARGV[2])
  return {'reserved', ''}
end
if fp ~= ARGV[1] then return {'conflict', ''} end
if redis.call('HGET', KEYS[1], 'state') == 'done' then
  return {'done', redis.call('HGET', KEYS[1], 'result')}
end
return {'pending', ''}
"""

_COMPLETE = """
local fp = redis.call('HGET', KEYS[1], 'fp')
if fp and fp ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], 'fp', ARGV[1], 'state', 'done', 'result', ARGV[2])
redis.call('EXPIRE', KEYS[1], ARGV[3])
return 1
"""

_RELEASE = """
if redis.call('HGET', KEYS[1], 'fp') == ARGV[1]
   and redis.call('HGET', KEYS[1], 'state') == 'pending' then
  return redis.call('DEL', KEYS[1])
end
return 0
"""

# Token bucket: `capacity` tokens, refilled continuously at `rate` tokens per ms. Time comes from
# the caller (one clock for tests and replicas alike); a clock that goes backwards refills nothing.
_TOKEN_BUCKET = """
local capacity = tonumber(ARGV[1])
local rate = tonumber(ARGV[2])
local now = tonumber(ARGV[3])
local cost = tonumber(ARGV[4])
-- tokens the bucket must hold to allow: the cost, or 1 for a look that takes nothing
local need = math.max(cost, 1)
local bucket = redis.call('HMGET', KEYS[1], 'tokens', 'ts')
local tokens = tonumber(bucket[1])
local ts = tonumber(bucket[2])
if tokens == nil or ts == nil then
  tokens = capacity
  ts = now
end
if now > ts then
  tokens = math.min(capacity, tokens + (now - ts) * rate)
  ts = now
end
local allowed = 0
local wait_ms = 0
if tokens >= need then
  tokens = tokens - cost
  allowed = 1
else
  wait_ms = math.ceil((need - tokens) / rate)
end
redis.call('HSET', KEYS[1], 'tokens', string.format('%.6f', tokens), 'ts', tostring(ts))
redis.call('PEXPIRE', KEYS[1], math.ceil(capacity / rate) + 1000)
return {allowed, wait_ms}
"""


def _hashed(value: str) -> str:
    # Keys are client-chosen: hash them so length and characters never matter to Redis.
    return hashlib.sha256(value.encode()).hexdigest()


class RedisIdempotencyStore:
    def __init__(
        self,
        client: Any,
        *,
        prefix: str = "api:idem:",
        ttl_s: int = IDEMPOTENCY_TTL_S,
        pending_ttl_s: int = PENDING_TTL_S,
    ) -> None:
        self._prefix = prefix
        self._ttl = ttl_s
        self._pending_ttl = pending_ttl_s
        self._reserve = client.register_script(_RESERVE)
        self._complete = client.register_script(_COMPLETE)
        self._release = client.register_script(_RELEASE)

    def _key(self, scope: str, key: str) -> str:
        return f"{self._prefix}{scope}:{_hashed(key)}"

    def reserve(self, scope: str, key: str, fingerprint: str) -> Reservation:
        state, result = self._reserve(
            keys=[self._key(scope, key)], args=[fingerprint, self._pending_ttl]
        )
        state = state.decode() if isinstance(state, bytes) else str(state)
        if state == "done":
            return Reservation("done", json.loads(result))
        if state in ("reserved", "conflict", "pending"):
            return Reservation(state)  # type: ignore[arg-type]
        raise RuntimeError(f"unexpected idempotency state {state!r}")

    def complete(self, scope: str, key: str, fingerprint: str, result: Mapping[str, Any]) -> None:
        self._complete(
            keys=[self._key(scope, key)],
            args=[fingerprint, json.dumps(dict(result), sort_keys=True), self._ttl],
        )

    def release(self, scope: str, key: str, fingerprint: str) -> None:
        self._release(keys=[self._key(scope, key)], args=[fingerprint])


class RedisTokenBucket:
    def __init__(self, client: Any, *, per_minute: int, prefix: str = "api:rl:") -> None:
        if per_minute < 1:
            raise ValueError("per_minute must be >= 1")
        self._prefix = prefix
        self._capacity = per_minute
        self._rate_per_ms = per_minute / 60_000
        self._script = client.register_script(_TOKEN_BUCKET)

    def hit(self, bucket: str, now_ms: int) -> RateDecision:
        return self._take(bucket, now_ms, 1)

    def check(self, bucket: str, now_ms: int) -> RateDecision:
        return self._take(bucket, now_ms, 0)

    def _take(self, bucket: str, now_ms: int, cost: int) -> RateDecision:
        allowed, wait_ms = self._script(
            keys=[self._prefix + bucket],
            args=[self._capacity, repr(self._rate_per_ms), now_ms, cost],
        )
        if int(allowed):
            return RateDecision(True)
        return RateDecision(False, retry_after_s=max(1, -(-int(wait_ms) // 1000)))


class RedisAcceptedCheckouts:
    def __init__(
        self, client: Any, *, prefix: str = "api:accepted:", ttl_s: int = ACCEPTED_TTL_S
    ) -> None:
        self._redis = client
        self._prefix = prefix
        self._ttl = ttl_s

    def record(self, accepted: Accepted) -> None:
        value = json.dumps(
            {
                "tenant_id": accepted.tenant_id,
                "accepted_at": accepted.accepted_at,
                "request": dict(accepted.request),
            },
            sort_keys=True,
        )
        self._redis.set(self._prefix + accepted.checkout_id, value, ex=self._ttl)

    def get(self, checkout_id: str) -> Accepted | None:
        raw = self._redis.get(self._prefix + checkout_id)
        if raw is None:
            return None
        data = json.loads(raw)
        return Accepted(
            checkout_id=checkout_id,
            tenant_id=str(data["tenant_id"]),
            accepted_at=int(data["accepted_at"]),
            request=data.get("request") or {},
        )
