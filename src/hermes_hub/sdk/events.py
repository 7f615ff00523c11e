"""The hub's live event stream over a WebSocket, reconnecting and resuming on its own.

The hub sends a ``hello``, then events ``{"id", "type", "data", "created_at"}`` and pings,
each event and ping carrying ``resume_after``: every event at or below it was sent. Ids grow,
but a late-committing transaction can deliver an event after a higher id. So the stream
reconnects with ``last_event_id`` = the last ``resume_after`` (never the highest id seen,
which could skip a late event) and drops the ids it already yielded: across a reconnect no
event is lost and none is yielded twice.

``websockets`` is imported when a stream first connects, so the rest of the SDK works
without it.
"""

from __future__ import annotations

import asyncio
import json
import random
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self

from hermes_hub.sdk.errors import (
    NO_RESPONSE_STATUS,
    HermesError,
    HubUnavailable,
    error_from_response,
    unreachable,
)

if TYPE_CHECKING:
    from websockets.asyncio.client import ClientConnection

# Close codes 4000 + HTTP status are refusals; of those, only a rate limit is worth retrying.
REFUSAL_CLOSE_CODES = range(4000, 5000)
RETRYABLE_REFUSALS = frozenset({429})
MISSING_WEBSOCKETS = "The event stream needs the 'websockets' package: pip install websockets"

_jitter = random.SystemRandom()


class EventStream:
    """Events addressed to the caller, as dicts, in the order the hub sends them.

    Iterate with ``async for``; use ``async with`` (or ``aclose()``) to close the socket when
    done. ``resume_point`` is where a later stream should start (``since=``) to pick up from
    here; a stream started from it may repeat events this one yielded (dedupe by ``id``),
    but never skips one.
    """

    def __init__(
        self,
        url: str,
        *,
        credential: str | None,
        since: int | None = None,
        reconnect_delay: float = 0.5,
        max_reconnect_delay: float = 30.0,
        max_reconnects: int | None = None,
        open_timeout: float = 30.0,
    ) -> None:
        self.url = url
        self._headers = {"Authorization": f"Bearer {credential}"} if credential else {}
        self._resume_after = since
        self._yielded_ids: set[int] = set()
        self._reconnect_delay = reconnect_delay
        self._max_reconnect_delay = max_reconnect_delay
        self._max_reconnects = max_reconnects
        self._open_timeout = open_timeout
        self._socket: ClientConnection | None = None
        self._failures = 0
        self._closed = False
        # Sockets opened so far, reconnects included.
        self.connections = 0

    @property
    def resume_point(self) -> int | None:
        """Every event at or below this id was yielded or predates the stream (``None`` until
        the first hello when the stream was started without ``since``)."""
        return self._resume_after

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> dict[str, Any]:
        try:
            from websockets.exceptions import ConnectionClosed
        except ImportError as exc:  # pragma: no cover - depends on the installation
            raise ImportError(MISSING_WEBSOCKETS) from exc
        while not self._closed:
            if self._socket is None:
                await self._connect()
                continue
            try:
                raw = await self._socket.recv()
            except ConnectionClosed as closed:
                self._socket = None
                if self._closed:
                    break
                self._raise_if_refused(closed)
                await self._back_off()
                continue
            message = json.loads(raw)
            if not isinstance(message, dict):
                continue
            try:
                event = self._accept(message)
            except HermesError:
                await self.aclose()
                raise
            if event is not None:
                return event
        raise StopAsyncIteration

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        self._closed = True
        socket, self._socket = self._socket, None
        if socket is not None:
            await socket.close()

    async def _connect(self) -> None:
        from websockets.asyncio.client import connect
        from websockets.exceptions import InvalidHandshake, InvalidStatus

        target = self.url
        if self._resume_after is not None:
            separator = "&" if "?" in target else "?"
            target = f"{target}{separator}last_event_id={self._resume_after}"
        try:
            self._socket = await connect(
                target, additional_headers=self._headers, open_timeout=self._open_timeout
            )
        except InvalidStatus as refused:
            response = refused.response
            error = _handshake_error(
                response.status_code, bytes(response.body), response.reason_phrase
            )
            if not isinstance(error, HubUnavailable):
                self._closed = True
                raise error from refused
            await self._back_off(refused)
        except (OSError, TimeoutError, InvalidHandshake) as failure:
            await self._back_off(failure)
        else:
            self.connections += 1

    def _accept(self, message: dict[str, Any]) -> dict[str, Any] | None:
        """The event to yield for a message from the hub, or ``None`` for anything else."""
        kind = message.get("type")
        if kind == "hello":
            start = int(message["last_event_id"])
            if self._resume_after is not None and start < self._resume_after:
                # The hub has no event as high as our resume point: its log was reset, so
                # the ids remembered from before no longer name the same events.
                self._yielded_ids.clear()
            self._settle(start)
            self._failures = 0
            return None
        if kind == "error":
            status = int(message.get("status", 0))
            if status not in RETRYABLE_REFUSALS and status < 500:
                raise error_from_response(status, message)
            return None
        if "id" not in message:
            self._settle(message.get("resume_after"))
            return None
        event_id = int(message["id"])
        duplicate = event_id in self._yielded_ids or (
            self._resume_after is not None and event_id <= self._resume_after
        )
        self._settle(message.get("resume_after"))
        if duplicate:
            return None
        self._yielded_ids.add(event_id)
        return {key: value for key, value in message.items() if key != "resume_after"}

    def _settle(self, resume_after: Any) -> None:
        if not isinstance(resume_after, int) or isinstance(resume_after, bool):
            return
        if self._resume_after is None or resume_after > self._resume_after:
            self._resume_after = resume_after
            # Ids at or below the resume point are dropped by comparison; forget them.
            self._yielded_ids = {seen for seen in self._yielded_ids if seen > resume_after}

    def _raise_if_refused(self, closed: Exception) -> None:
        received = getattr(closed, "rcvd", None)
        code = getattr(received, "code", None)
        if (
            isinstance(code, int)
            and code in REFUSAL_CLOSE_CODES
            and code - 4000 not in RETRYABLE_REFUSALS
        ):
            self._closed = True
            reason = getattr(received, "reason", "") or "refused"
            raise error_from_response(
                code - 4000, {"code": reason, "detail": f"The hub closed the stream: {reason}."}
            ) from closed

    async def _back_off(self, failure: Exception | None = None) -> None:
        """Wait before the next attempt: exponential, capped, with jitter so that many
        clients cut off together do not all come back at the same instant."""
        self._failures += 1
        if self._max_reconnects is not None and self._failures > self._max_reconnects:
            self._closed = True
            if failure is None:
                raise HubUnavailable(
                    NO_RESPONSE_STATUS, "stream_lost", "The event stream kept disconnecting."
                )
            raise unreachable(failure) from failure
        ceiling = min(self._max_reconnect_delay, self._reconnect_delay * 2 ** (self._failures - 1))
        await asyncio.sleep(ceiling * _jitter.uniform(0.5, 1.0))


def _handshake_error(status: int, body: bytes, reason: str) -> HermesError:
    try:
        problem = json.loads(body) if body else None
    except ValueError:
        problem = None
    return error_from_response(
        status, problem if isinstance(problem, dict) else None, reason=reason
    )
