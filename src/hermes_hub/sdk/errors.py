"""Typed exceptions for the hub's RFC 9457 problems, chosen by machine ``code`` then status."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

# Raised without any HTTP answer (connection refused, timeout, TLS failure).
NO_RESPONSE_STATUS = 0


class HermesError(Exception):
    """The hub refused or failed a request.

    ``status`` is the HTTP status (``0`` when no answer arrived), ``code`` the problem's
    stable machine code, ``detail`` its sentence and ``problem`` the whole problem document,
    which carries extra members such as ``errors`` on a validation failure.
    """

    def __init__(
        self,
        status: int,
        code: str,
        detail: str,
        *,
        problem: Mapping[str, Any] | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(f"{detail} ({status} {code})")
        self.status = status
        self.code = code
        self.detail = detail
        self.problem: dict[str, Any] = dict(problem or {})
        # Seconds the hub asks a client to wait before retrying, when it says so.
        self.retry_after = retry_after


class AuthenticationError(HermesError):
    """401: no credential, or one that is unknown, revoked or expired."""


class PermissionDenied(HermesError):
    """403: authenticated, but not allowed to do this."""


class ApprovalRequired(PermissionDenied):
    """403 ``approval_required``: the agent's owner must approve this caller first."""


class NotFound(HermesError):
    """404: no such resource, or none the caller may see."""


class Conflict(HermesError):
    """409: the resource's state forbids the action (e.g. an illegal contract transition)."""


class InsufficientFunds(Conflict):
    """409 ``insufficient_funds``: the wallet cannot cover the amount."""


class ValidationFailed(HermesError):
    """400 or 422: the request is malformed; ``errors`` lists the fields at fault."""

    @property
    def errors(self) -> list[dict[str, Any]]:
        found = self.problem.get("errors")
        return (
            [error for error in found if isinstance(error, dict)] if isinstance(found, list) else []
        )


class RateLimited(HermesError):
    """429: too many requests; wait ``retry_after`` seconds."""


class AgentUnavailable(HermesError):
    """502 or 504 from the hub: the called agent is unreachable or did not answer in time."""


class HubUnavailable(HermesError):
    """The hub itself failed (5xx) or could not be reached at all (status 0)."""


_BY_CODE: dict[str, type[HermesError]] = {
    "approval_required": ApprovalRequired,
    "insufficient_funds": InsufficientFunds,
}

_BY_STATUS: dict[int, type[HermesError]] = {
    400: ValidationFailed,
    401: AuthenticationError,
    403: PermissionDenied,
    404: NotFound,
    409: Conflict,
    422: ValidationFailed,
    429: RateLimited,
    502: AgentUnavailable,
    504: AgentUnavailable,
}


def _seconds(value: Any) -> float | None:
    if isinstance(value, bool) or value is None:
        return None
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        # Retry-After may also be an HTTP date; the hub never sends one, so it is not parsed.
        return None
    return seconds if seconds >= 0 else None


def _error_class(status: int, code: str | None) -> type[HermesError]:
    if code is not None and code in _BY_CODE:
        return _BY_CODE[code]
    # A 502/504 without a problem code comes from a proxy in front of the hub, not from the
    # hub's gateway, so it is the hub that is unreachable, not the agent.
    if status in (502, 504) and code is None:
        return HubUnavailable
    if status in _BY_STATUS:
        return _BY_STATUS[status]
    return HubUnavailable if status >= 500 else HermesError


def error_from_response(
    status: int,
    problem: Mapping[str, Any] | None,
    *,
    headers: Mapping[str, str] | None = None,
    reason: str = "",
) -> HermesError:
    """The typed exception for an error answer: its problem+json body (or ``None`` when the
    body was not JSON), the response headers for ``Retry-After``, and the status phrase."""
    body = dict(problem or {})
    raw_code = body.get("code")
    code = raw_code if isinstance(raw_code, str) and raw_code else None
    raw_detail = body.get("detail")
    detail = raw_detail if isinstance(raw_detail, str) and raw_detail else reason or "HTTP error"
    retry_after = _seconds(body.get("retry_after"))
    if retry_after is None and headers is not None:
        retry_after = _seconds(headers.get("retry-after"))
    error_class = _error_class(status, code)
    return error_class(status, code or "http_error", detail, problem=body, retry_after=retry_after)


def unreachable(error: Exception) -> HubUnavailable:
    """The hub gave no HTTP answer at all (refused, timed out, reset)."""
    return HubUnavailable(
        NO_RESPONSE_STATUS,
        "hub_unreachable",
        f"The hub could not be reached: {str(error) or type(error).__name__}",
    )
