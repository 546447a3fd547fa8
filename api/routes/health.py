"""Liveness, readiness and metrics."""

from __future__ import annotations

import concurrent.futures
import time

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from api.models import DependencyCheck, Health, Ready
from api.ports import Probe
from api.security import Deps

router = APIRouter(tags=["operations"])

PROBE_TIMEOUT_S = 3.0


@router.get("/health", response_model=Health, summary="Liveness: the process answers")
def health() -> Health:
    return Health(status="ok")  # deliberately touches nothing: a broker outage is not a restart


def _check(probe: Probe) -> DependencyCheck:
    started = time.perf_counter()
    try:
        detail = probe()
        ok = True
    except Exception as e:
        # The exception type only: driver messages can carry hosts and credentials.
        detail, ok = f"unreachable ({type(e).__name__})", False
    return DependencyCheck(
        ok=ok, detail=detail, latency_ms=round((time.perf_counter() - started) * 1000, 1)
    )


@router.get(
    "/ready",
    response_model=Ready,
    responses={503: {"model": Ready, "description": "a dependency is down"}},
    summary="Readiness: broker, PostgreSQL, Redis and Stripe reachable",
)
def ready(deps: Deps) -> JSONResponse:
    # Probes run concurrently so one hanging dependency costs its timeout once, not the sum.
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=max(1, len(deps.probes)))
    futures = {name: pool.submit(_check, probe) for name, probe in deps.probes.items()}
    deadline = time.monotonic() + PROBE_TIMEOUT_S
    checks: dict[str, DependencyCheck] = {}
    for name, future in futures.items():
        try:
            checks[name] = future.result(timeout=max(0.0, deadline - time.monotonic()))
        except concurrent.futures.TimeoutError:
            checks[name] = DependencyCheck(
                ok=False, detail="timed out", latency_ms=PROBE_TIMEOUT_S * 1000
            )
    pool.shutdown(wait=False, cancel_futures=True)  # a hung probe must not hold the answer
    all_ok = all(c.ok for c in checks.values())
    body = Ready(status="ready" if all_ok else "not_ready", checks=checks)
    return JSONResponse(body.model_dump(mode="json"), status_code=200 if all_ok else 503)


@router.get(
    "/metrics",
    response_class=Response,
    responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}}}},
    summary="Prometheus metrics",
)
def metrics(request: Request) -> Response:
    registry = request.app.state.metrics.registry
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)
