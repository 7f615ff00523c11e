"""Live events over WebSockets, and agent presence.

``GET /api/v1/ws/agent`` (agent API key) and ``GET /api/v1/ws/user`` (user JWT) stream the
events addressed to the authenticated principal. The token comes from
``Authorization: Bearer <token>`` or, for browsers (which cannot set headers on a
WebSocket), from the ``token`` query parameter; the header wins when both are present.

Refusals happen after the handshake: the server accepts, sends one
``{"type": "error", "code", "status", "detail"}`` message and closes with code
``4000 + status``: 4400 (bad ``last_event_id``), 4401 (missing, unknown, revoked or
expired token), 4403 (wrong kind of principal for the route), 4429 (rate limited). A close
before the handshake would reach the client as a bare HTTP 403, without a reason, and
browsers show neither. A credential that stops being valid while connected (revoked key,
deactivated user, expired token) gets the same treatment at the next heartbeat. 1011 means
the hub failed (e.g. database unreachable): reconnect with ``last_event_id``.

Protocol, server to client, one JSON object per text frame:

1. ``{"type": "hello", "recipient": "agent:<uuid>", "last_event_id": N,
   "heartbeat_seconds": H}``: every event with an id above N follows, and nothing at or
   below it. N is the ``last_event_id`` query parameter if given (capped at the newest
   event), else the newest event's id: without it a client gets only new events.
2. Events, ``{"id", "type", "data", "created_at"}`` (``EventRecord.as_message``): first the
   replay from the log, then live ones, each exactly once. Ids grow but, as concurrent
   transactions commit in any order, a live event can arrive after one with a higher id.
   Each event and ping also carries ``resume_after``: every event at or below it was sent.
   To resume without any chance of loss, reconnect with ``last_event_id`` = the last
   ``resume_after`` received and drop ids already seen; resuming from the highest id
   received can miss an event whose transaction committed after a later one was sent.
3. ``{"type": "ping"}`` every H seconds. Only messages with an ``id`` are events.

Clients may send ``{"type": "pong"}``; the server ignores whatever clients send.
"""

from __future__ import annotations

import uuid

from fastapi import APIRouter, WebSocket
from fastapi.security.utils import get_authorization_scheme_param

from hermes_hub.db.session import Database, DbSession
from hermes_hub.errors import AuthenticationError, HubError
from hermes_hub.events.deps import PresenceDep, get_broker, get_presence
from hermes_hub.events.log import agent_recipient, user_recipient
from hermes_hub.events.schemas import AgentPresence
from hermes_hub.events.stream import EventStream, close_internal_error, refuse
from hermes_hub.identity import service as identity_service
from hermes_hub.identity.deps import CurrentPrincipal, authenticate_token, resolve_token
from hermes_hub.runtime import Runtime

router = APIRouter(tags=["events"])


def _token(websocket: WebSocket) -> str | None:
    scheme, credentials = get_authorization_scheme_param(websocket.headers.get("authorization"))
    if scheme.lower() == "bearer" and credentials:
        return credentials
    return websocket.query_params.get("token") or None


def _last_event_id(websocket: WebSocket) -> int | None:
    raw = websocket.query_params.get("last_event_id")
    if raw is None or raw == "":
        return None
    if not raw.isascii() or not raw.isdigit():
        raise HubError(
            "last_event_id must be a non-negative integer: the highest event id received.",
            status=400,
            code="invalid_last_event_id",
        )
    return int(raw)


async def _authenticate(websocket: WebSocket, *, agent: bool) -> tuple[str, str, uuid.UUID | None]:
    """The token, the recipient it reads and, on the agent route, the agent's id."""
    token = _token(websocket)
    if token is None:
        raise AuthenticationError(
            "Send 'Authorization: Bearer <token>' or a 'token' query parameter "
            "with a user token or agent API key."
        )
    principal = await authenticate_token(websocket, token)
    if agent:
        if principal.agent is None:
            raise HubError(
                "This socket is for agents; authenticate with an agent API key.",
                status=403,
                code="agent_required",
            )
        return token, agent_recipient(principal.agent.id), principal.agent.id
    if principal.user is None:
        raise HubError(
            "This socket is for users; agents use /api/v1/ws/agent.",
            status=403,
            code="user_required",
        )
    return token, user_recipient(principal.user.id), None


async def _serve(websocket: WebSocket, *, agent: bool) -> None:
    try:
        token, recipient, agent_id = await _authenticate(websocket, agent=agent)
        after_id = _last_event_id(websocket)
    except HubError as error:
        await websocket.accept()
        await refuse(websocket, error)
        return
    except Exception as error:  # the database or the rate-limit store is unreachable
        await websocket.accept()
        await close_internal_error(websocket, error)
        return
    await websocket.accept()

    runtime: Runtime = websocket.app.state.runtime
    database: Database = websocket.app.state.database
    presence = get_presence(websocket)

    async def heartbeat() -> None:
        # Credentials revoked or expired since the connect end the stream (4401).
        await resolve_token(websocket, token)
        if agent_id is not None:
            await presence.refresh(agent_id)

    async with get_broker(websocket).subscribe(recipient) as subscription:
        stream = EventStream(
            websocket,
            database=database,
            subscription=subscription,
            heartbeat_seconds=runtime.settings.ws_heartbeat_seconds,
            on_heartbeat=heartbeat,
        )
        if agent_id is None:
            await stream.serve(after_id)
        else:
            async with presence.track(agent_id):
                await stream.serve(after_id)


@router.websocket("/api/v1/ws/agent", name="agent_events_socket")
async def agent_events_socket(websocket: WebSocket) -> None:
    await _serve(websocket, agent=True)


@router.websocket("/api/v1/ws/user", name="user_events_socket")
async def user_events_socket(websocket: WebSocket) -> None:
    await _serve(websocket, agent=False)


@router.get(
    "/api/v1/agents/{agent_id}/presence",
    response_model=AgentPresence,
    operation_id="get_agent_presence",
    description="Whether the agent has an event socket open, for anyone who may see the agent.",
)
async def get_agent_presence(
    agent_id: uuid.UUID, viewer: CurrentPrincipal, session: DbSession, presence: PresenceDep
) -> AgentPresence:
    agent, _ = await identity_service.get_visible_agent(session, agent_id=agent_id, viewer=viewer)
    return AgentPresence(agent_id=agent.id, online=await presence.is_online(agent.id))
