"""One socket's stream of events: hello, replay from the log, then live events and pings.

The socket is subscribed before anything is read from the log, so an event committed while
the replay runs is either in the replay or on the subscription's queue; the cursor drops
whichever copy comes second. Each heartbeat re-reads the log, which catches anything a
worker never heard about (a Redis message lost), and a lagging subscription re-reads at
once. The socket holds no database connection between those reads.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Awaitable, Callable
from typing import Any

import structlog
from starlette.websockets import WebSocket, WebSocketDisconnect

from hermes_hub.db.session import Database
from hermes_hub.errors import HubError
from hermes_hub.events.broker import Subscription
from hermes_hub.events.cursor import DeliveryCursor
from hermes_hub.events.log import MAX_REPLAY, EventRecord, latest_id, read_since

logger = structlog.get_logger(__name__)

Heartbeat = Callable[[], Awaitable[None]]

# Close codes: 4000 + the HTTP status of the refusal (4401, 4403, 4429, ...); 1011 when the
# hub itself fails (database down): the client reconnects with its last_event_id.
CLOSE_INTERNAL_ERROR = 1011
REPLAY_PAGE = MAX_REPLAY


def close_code(error: HubError) -> int:
    return 4000 + error.status


async def send_json(websocket: WebSocket, message: dict[str, Any]) -> None:
    await websocket.send_text(json.dumps(message, separators=(",", ":")))


async def refuse(websocket: WebSocket, error: HubError) -> None:
    """Tell the client why, then close with ``4000 + status`` (the socket must be accepted).

    Sent after the handshake because a close before it reaches the client as a bare HTTP
    403, without the code, and browsers expose neither.
    """
    with contextlib.suppress(WebSocketDisconnect, RuntimeError):
        await send_json(
            websocket,
            {"type": "error", "code": error.code, "status": error.status, "detail": error.detail},
        )
        await websocket.close(close_code(error), reason=error.code)


async def close_internal_error(websocket: WebSocket, error: BaseException) -> None:
    """The hub failed (database or Redis unreachable): close with 1011; the client retries."""
    logger.warning("event_socket_failed", error=repr(error), exc_info=error)
    with contextlib.suppress(WebSocketDisconnect, RuntimeError):
        await websocket.close(CLOSE_INTERNAL_ERROR, reason="internal_error")


class EventStream:
    def __init__(
        self,
        websocket: WebSocket,
        *,
        database: Database,
        subscription: Subscription,
        heartbeat_seconds: float,
        on_heartbeat: Heartbeat,
    ) -> None:
        self.websocket = websocket
        self.database = database
        self.subscription = subscription
        self.recipient = subscription.recipient
        self.heartbeat_seconds = heartbeat_seconds
        self.on_heartbeat = on_heartbeat
        self.cursor = DeliveryCursor(0)

    async def serve(self, after_id: int | None) -> None:
        """Run until the client leaves; on a failure, close the socket with a reason."""
        pump = asyncio.create_task(self._pump(after_id))
        listener = asyncio.create_task(_ignore_client_messages(self.websocket))
        try:
            await asyncio.wait({pump, listener}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            pump.cancel()
            listener.cancel()
            await asyncio.gather(pump, listener, return_exceptions=True)
        if pump.cancelled():
            return  # the client went away
        error = pump.exception()
        if isinstance(error, WebSocketDisconnect):
            return
        if isinstance(error, HubError):
            await refuse(self.websocket, error)
        elif error is not None:
            await close_internal_error(self.websocket, error)

    async def _pump(self, after_id: int | None) -> None:
        async with self.database.read_sessions() as session:
            latest = await latest_id(session, self.recipient)
        # A resume point past the newest event (a reset database) would hide new ones.
        start = latest if after_id is None else min(after_id, latest)
        self.cursor = DeliveryCursor(start)
        await send_json(
            self.websocket,
            {
                "type": "hello",
                "recipient": self.recipient,
                "last_event_id": start,
                "heartbeat_seconds": self.heartbeat_seconds,
            },
        )
        await self._catch_up()
        loop = asyncio.get_running_loop()
        next_beat = loop.time() + self.heartbeat_seconds
        while True:
            await self.subscription.wait(next_beat - loop.time())
            if self.subscription.take_lag():
                await self._catch_up()
            for record in self.subscription.drain():
                await self._send(record)
            if loop.time() >= next_beat:
                await send_json(
                    self.websocket, {"type": "ping", "resume_after": self.cursor.settled}
                )
                await self.on_heartbeat()
                await self._catch_up()
                self.cursor.settle()
                next_beat = loop.time() + self.heartbeat_seconds

    async def _catch_up(self) -> None:
        """Send what the log has past the cursor's settled point, a page at a time."""
        after = self.cursor.settled
        while True:
            async with self.database.read_sessions() as session:
                page = await read_since(session, self.recipient, after, limit=REPLAY_PAGE)
            for record in page:
                await self._send(record)
            if len(page) < REPLAY_PAGE:
                return
            after = page[-1].id

    async def _send(self, record: EventRecord) -> None:
        if self.cursor.wants(record.id):
            # resume_after: every event at or below it has been sent; a client that resumes
            # from it (deduplicating by id) cannot miss an event that committed late.
            message = {**record.as_message(), "resume_after": self.cursor.settled}
            await send_json(self.websocket, message)
            self.cursor.sent(record.id)


async def _ignore_client_messages(websocket: WebSocket) -> None:
    """Read until the client disconnects. Clients may send ``{"type": "pong"}`` or anything
    else: nothing they send changes the stream, so nothing is parsed."""
    while True:
        message = await websocket.receive()
        if message["type"] == "websocket.disconnect":
            return
