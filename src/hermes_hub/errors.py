"""One error type for the whole hub, rendered as RFC 9457 ``application/problem+json``."""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from limits.errors import StorageError
from sqlalchemy.exc import DBAPIError, IntegrityError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from starlette.exceptions import HTTPException as StarletteHTTPException

PROBLEM_CONTENT_TYPE = "application/problem+json"
PROBLEM_TYPE_BASE = "https://hermes-hub.dev/problems/"

logger = structlog.get_logger(__name__)


class HubError(Exception):
    """A failure the client can act on: an HTTP status, a stable machine code and a sentence."""

    status: int = 400
    code: str = "bad_request"

    def __init__(
        self,
        detail: str,
        *,
        status: int | None = None,
        code: str | None = None,
        headers: dict[str, str] | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(detail)
        self.detail = detail
        if status is not None:
            self.status = status
        if code is not None:
            self.code = code
        self.headers = headers or {}
        self.extra = extra or {}


class NotFoundError(HubError):
    status = 404
    code = "not_found"


class ConflictError(HubError):
    status = 409
    code = "conflict"


class AuthenticationError(HubError):
    status = 401
    code = "not_authenticated"

    def __init__(self, detail: str = "Authentication required.", **kwargs: Any) -> None:
        kwargs.setdefault("headers", {"WWW-Authenticate": "Bearer"})
        super().__init__(detail, **kwargs)


def problem_response(
    *,
    status: int,
    code: str,
    detail: str,
    instance: str | None = None,
    headers: dict[str, str] | None = None,
    extra: dict[str, Any] | None = None,
) -> JSONResponse:
    body: dict[str, Any] = {
        "type": PROBLEM_TYPE_BASE + code,
        "title": HTTPStatus(status).phrase,
        "status": status,
        "detail": detail,
        "code": code,
    }
    if instance:
        body["instance"] = instance
    if extra:
        body.update(extra)
    return JSONResponse(body, status_code=status, headers=headers, media_type=PROBLEM_CONTENT_TYPE)


_STATUS_CODES = {
    400: "bad_request",
    401: "not_authenticated",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    413: "payload_too_large",
    415: "unsupported_media_type",
    429: "rate_limited",
}


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(HubError)
    async def _hub_error(request: Request, exc: HubError) -> JSONResponse:
        return problem_response(
            status=exc.status,
            code=exc.code,
            detail=exc.detail,
            instance=request.url.path,
            headers=exc.headers,
            extra=exc.extra,
        )

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [
            {
                "loc": list(error.get("loc", ())),
                "msg": str(error.get("msg", "")),
                "type": str(error.get("type", "")),
            }
            for error in exc.errors()
        ]
        summary = "; ".join(
            f"{'.'.join(str(part) for part in error['loc'])}: {error['msg']}" for error in errors
        )
        return problem_response(
            status=422,
            code="validation_error",
            detail=f"The request is malformed: {summary}"
            if summary
            else "The request is malformed.",
            instance=request.url.path,
            extra={"errors": errors},
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = _STATUS_CODES.get(exc.status_code, "http_error")
        detail = exc.detail if isinstance(exc.detail, str) else HTTPStatus(exc.status_code).phrase
        return problem_response(
            status=exc.status_code,
            code=code,
            detail=detail,
            instance=request.url.path,
            headers=dict(exc.headers or {}),
        )

    @app.exception_handler(IntegrityError)
    async def _integrity_error(request: Request, exc: IntegrityError) -> JSONResponse:
        # Service code checks uniqueness first; this catches the race where two
        # requests pass that check together and the database refuses the second.
        logger.info("integrity_conflict", error=str(exc.orig))
        return problem_response(
            status=409,
            code="conflict",
            detail="The request conflicts with a concurrent change; retry it.",
            instance=request.url.path,
        )

    async def _database_unavailable(request: Request, exc: Exception) -> JSONResponse:
        if (
            isinstance(exc, DBAPIError)
            and not isinstance(exc, OperationalError | InterfaceError)
            and not exc.connection_invalidated
        ):
            logger.error("database_error", error=repr(exc))
            return problem_response(
                status=500,
                code="internal_error",
                detail="The database rejected the request; nothing was changed.",
                instance=request.url.path,
            )
        logger.warning("database_unavailable", error=repr(exc))
        return problem_response(
            status=503,
            code="database_unavailable",
            detail="The database is unreachable; nothing was changed. Retry shortly.",
            instance=request.url.path,
            headers={"Retry-After": "5"},
        )

    # Registered per class (not on Exception) so Starlette's inner exception middleware
    # renders them and the request log still sees a response.
    for outage in (DBAPIError, PoolTimeoutError, OSError):
        app.add_exception_handler(outage, _database_unavailable)

    @app.exception_handler(StorageError)
    async def _rate_limiter_unavailable(request: Request, exc: StorageError) -> JSONResponse:
        logger.warning("rate_limit_storage_unavailable", error=repr(exc.storage_error))
        return problem_response(
            status=503,
            code="rate_limiter_unavailable",
            detail="The rate-limit store is unreachable; nothing was changed. Retry shortly.",
            instance=request.url.path,
            headers={"Retry-After": "5"},
        )
