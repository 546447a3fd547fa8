"""The Idempotency-Key layer's rules that need a controllable endpoint or clock: in-flight
conflicts, what is not saved, and 24 h expiry. Against a tiny aiohttp app standing in for
localstripe (the behaviour on the real emulator is in tests/integration/payments)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from infra.embedded.idempotency_layer import DAY_S, IdempotencyLayer

AUTH = {"Authorization": "Bearer sk_test_a"}


class Endpoint:
    """Counts executions; answers with the queued statuses, then 200."""

    def __init__(self) -> None:
        self.executions = 0
        self.statuses: list[int] = []
        self.gate: asyncio.Event | None = None
        self.raise_next = False

    async def handle(self, request: web.Request) -> web.Response:
        self.executions += 1
        await request.post()
        if self.gate is not None:
            await self.gate.wait()
        if self.raise_next:
            self.raise_next = False
            raise RuntimeError("emulator bug")
        status = self.statuses.pop(0) if self.statuses else 200
        return web.json_response({"n": self.executions}, status=status)


def run(
    body: Callable[[TestClient[Any, Any], Endpoint, IdempotencyLayer], Awaitable[None]],
    clock: Callable[[], float] | None = None,
) -> None:
    async def main() -> None:
        endpoint = Endpoint()
        layer = IdempotencyLayer(clock=clock) if clock else IdempotencyLayer()
        app = web.Application()
        layer.install(app)
        app.router.add_post("/v1/things", endpoint.handle)
        app.router.add_post("/v1/other", endpoint.handle)
        async with TestClient(TestServer(app)) as client:
            await body(client, endpoint, layer)

    asyncio.run(main())


def post(
    client: TestClient[Any, Any], key: str, data: dict[str, str], path: str = "/v1/things"
) -> Any:
    return client.post(path, data=data, headers={**AUTH, "Idempotency-Key": key})


def test_a_concurrent_repeat_gets_409_and_the_endpoint_runs_once() -> None:
    async def body(client: TestClient[Any, Any], endpoint: Endpoint, _: IdempotencyLayer) -> None:
        endpoint.gate = asyncio.Event()
        first = asyncio.ensure_future(post(client, "k1", {"a": "1"}))
        deadline = asyncio.get_running_loop().time() + 5
        while endpoint.executions == 0:  # poll until the first is inside the endpoint
            assert asyncio.get_running_loop().time() < deadline
            await asyncio.sleep(0.01)
        second = await post(client, "k1", {"a": "1"})
        assert second.status == 409
        assert (await second.json())["error"]["type"] == "idempotency_error"
        endpoint.gate.set()
        done = await first
        assert done.status == 200 and (await done.json()) == {"n": 1}
        # Nothing was saved for the conflict: the retry replays the first's answer.
        again = await post(client, "k1", {"a": "1"})
        assert again.headers.get("Idempotent-Replayed") == "true"
        assert (await again.json()) == {"n": 1}
        assert endpoint.executions == 1

    run(body)


def test_a_validation_400_is_not_saved_and_a_500_is() -> None:
    async def body(client: TestClient[Any, Any], endpoint: Endpoint, _: IdempotencyLayer) -> None:
        endpoint.statuses = [400, 500]
        assert (await post(client, "k2", {"a": "1"})).status == 400
        second = await post(client, "k2", {"a": "1"})  # runs again: the 400 was not saved
        assert second.status == 500 and "Idempotent-Replayed" not in second.headers
        third = await post(client, "k2", {"a": "1"})
        assert third.status == 500 and third.headers.get("Idempotent-Replayed") == "true"
        assert endpoint.executions == 2

    run(body)


def test_an_exception_inside_the_endpoint_is_saved_as_stripes_500() -> None:
    async def body(client: TestClient[Any, Any], endpoint: Endpoint, _: IdempotencyLayer) -> None:
        endpoint.raise_next = True
        first = await post(client, "k3", {"a": "1"})
        assert first.status == 500
        assert (await first.json())["error"]["type"] == "api_error"
        again = await post(client, "k3", {"a": "1"})
        assert again.status == 500 and again.headers.get("Idempotent-Replayed") == "true"
        assert endpoint.executions == 1

    run(body)


def test_keys_expire_after_24_hours_and_memory_shrinks() -> None:
    now = [1_000_000.0]

    async def body(
        client: TestClient[Any, Any], endpoint: Endpoint, layer: IdempotencyLayer
    ) -> None:
        await post(client, "old", {"a": "1"})
        now[0] += DAY_S - 1
        assert (await post(client, "old", {"a": "1"})).headers.get("Idempotent-Replayed")
        await post(client, "young", {"a": "1"})
        assert len(layer) == 2
        now[0] += 2  # "old" is now past 24 h, "young" is not
        fresh = await post(client, "old", {"a": "2"})  # other params are fine once pruned
        assert fresh.status == 200 and "Idempotent-Replayed" not in fresh.headers
        assert (await fresh.json()) == {"n": 3}
        assert len(layer) == 2  # "old" (re-saved) and "young"; the expired entry is gone
        assert endpoint.executions == 3

    run(body, clock=lambda: now[0])


def test_other_endpoint_with_the_same_key_is_a_mismatch() -> None:
    async def body(client: TestClient[Any, Any], endpoint: Endpoint, _: IdempotencyLayer) -> None:
        assert (await post(client, "k4", {"a": "1"})).status == 200
        other = await post(client, "k4", {"a": "1"}, path="/v1/other")
        assert other.status == 400
        assert (await other.json())["error"]["type"] == "idempotency_error"
        assert endpoint.executions == 1

    run(body)
