"""Operational endpoints, public by design: liveness, readiness and metrics."""

from __future__ import annotations

import hmac
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse

from hermes_hub.db import migrate
from hermes_hub.db.session import get_database
from hermes_hub.errors import AuthenticationError, problem_response
from hermes_hub.ops.metrics import METRICS_CONTENT_TYPE, RequestObserver, render_metrics
from hermes_hub.runtime import get_runtime

router = APIRouter(tags=["operations"])


@router.get("/healthz", operation_id="health", summary="The process is up.")
async def health() -> dict[str, str]:
    return {"status": "ok"}


async def _check_database(request: Request) -> dict[str, Any]:
    database = get_database(request)
    try:
        # Reading the schema revision is itself the reachability check.
        revision = await migrate.current_revision(database.engine)
    except Exception as exc:  # any failure to reach the database means "not ready"
        return {"ok": False, "error": f"database unreachable: {type(exc).__name__}"}
    head = migrate.head_revision()
    if revision != head:
        return {
            "ok": False,
            "error": f"migrations not current ({revision} != {head}); run 'hermes db upgrade'",
        }
    return {"ok": True, "revision": revision}


async def _check_redis(request: Request) -> dict[str, Any] | None:
    client = request.app.state.redis
    if client is None:
        return None
    try:
        await client.ping()
    except Exception as exc:  # any failure to reach Redis means "not ready"
        return {"ok": False, "error": f"redis unreachable: {type(exc).__name__}"}
    return {"ok": True}


@router.get(
    "/readyz",
    operation_id="readiness",
    summary=(
        "The database is reachable with current migrations, and Redis if configured; "
        "also says whether semantic search is on."
    ),
    responses={503: {"description": "A dependency is not ready."}},
)
async def readiness(request: Request) -> Response:
    checks: dict[str, Any] = {"database": await _check_database(request)}
    redis_check = await _check_redis(request)
    if redis_check is not None:
        checks["redis"] = redis_check
    # Never failing: without the model the hub searches lexically, and says so here.
    checks["discovery"] = request.app.state.discovery.status().as_dict()
    failed = [name for name, check in checks.items() if not check["ok"]]
    if failed:
        return problem_response(
            status=503,
            code="not_ready",
            detail="Not ready: " + "; ".join(str(checks[name]["error"]) for name in failed),
            instance="/readyz",
            extra={"checks": checks},
        )
    return JSONResponse({"status": "ready", "checks": checks})


@router.get(
    "/metrics", operation_id="metrics", summary="Prometheus metrics.", response_class=Response
)
async def metrics(request: Request) -> Response:
    token = (await get_runtime(request)).settings.metrics_token
    if token is not None:
        supplied = request.headers.get("authorization", "").removeprefix("Bearer ").strip()
        if not hmac.compare_digest(supplied.encode(), token.get_secret_value().encode()):
            raise AuthenticationError(
                "Metrics need 'Authorization: Bearer <HERMES_METRICS_TOKEN>'."
            )
    observer: RequestObserver = request.app.state.request_observer
    observer.sample_pool()
    return Response(render_metrics(), media_type=METRICS_CONTENT_TYPE)
