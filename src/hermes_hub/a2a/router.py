"""HTTP routes for A2A: the per-agent card and JSON-RPC endpoint, the hub's AI Catalog, card
management, the call log, and the execute API for callers that do not speak A2A."""

from __future__ import annotations

import contextlib
import json
import uuid
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Annotated, Any, Literal

from a2a.types.a2a_pb2 import (
    Message,
    Part,
    Role,
    SendMessageRequest,
    StreamResponse,
    Task,
    TaskState,
)
from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from google.protobuf.json_format import MessageToDict, ParseDict
from google.protobuf.struct_pb2 import Value
from pydantic import Field
from sqlalchemy import func, select
from sse_starlette.sse import EventSourceResponse
from starlette.background import BackgroundTask

from hermes_hub.a2a.cards import gateway_url, hub_card, validate_card
from hermes_hub.a2a.gateway import GatewayCall
from hermes_hub.a2a.hub import A2AHub
from hermes_hub.a2a.models import AgentCall, AgentCardRecord
from hermes_hub.a2a.service import CallPlan, plan_call, upstream_of
from hermes_hub.a2a.upstream import Upstream, UpstreamFailure, classify
from hermes_hub.db.session import Database, ReadSession
from hermes_hub.discovery.service import Viewer, visible_condition
from hermes_hub.errors import HubError, problem_response
from hermes_hub.identity import permissions
from hermes_hub.identity.deps import CurrentPrincipal, CurrentUser, OptionalPrincipal
from hermes_hub.identity.errors import AgentNotFoundError
from hermes_hub.identity.models import Agent, AgentStatus
from hermes_hub.identity.principal import Principal
from hermes_hub.kit.pagination import Page, PageParams, page_params
from hermes_hub.kit.ratelimit import RateLimiter
from hermes_hub.kit.safe_http import deadline
from hermes_hub.kit.schemas import InputModel, OutputModel
from hermes_hub.kit.time import utcnow
from hermes_hub.runtime import RuntimeDep

gateway_router = APIRouter(prefix="/a2a/agents", tags=["a2a"])
catalog_router = APIRouter(tags=["a2a"])
api_router = APIRouter(prefix="/api/v1/agents", tags=["a2a"])

AI_CATALOG_SPEC_VERSION = "1.0"
A2A_CARD_MEDIA_TYPE = "application/a2a-agent-card+json"


def _hub(request: Request) -> A2AHub:
    hub: A2AHub = request.app.state.a2a
    return hub


def _database(request: Request) -> Database:
    database: Database = request.app.state.database
    return database


def _limiter(request: Request) -> RateLimiter:
    limiter: RateLimiter = request.app.state.rate_limiter
    return limiter


async def _visible_agent(session: ReadSession, agent_id: uuid.UUID, viewer: Viewer) -> Agent:
    agent = await session.scalar(
        select(Agent).where(
            Agent.id == agent_id,
            Agent.status != AgentStatus.BANNED.value,
            visible_condition(viewer),
        )
    )
    if agent is None:
        raise AgentNotFoundError("No such agent.")
    return agent


async def _upstream(request: Request, plan: CallPlan) -> Upstream:
    """Where to forward: the stored card's interface, fetching the card first if the hub has
    none yet (an enrollment's background fetch may still be running)."""
    if plan.upstream is not None:
        return plan.upstream
    record = await _hub(request).refresh_card(plan.agent_id)
    upstream = upstream_of(record)
    if upstream is None:  # pragma: no cover - refresh_card stores a validated interface
        raise HubError("The agent's card offers no usable interface.", status=502)
    return upstream


async def _authorized_call(
    request: Request, agent_id: uuid.UUID, principal: Principal, *, channel: str
) -> GatewayCall:
    """Authorize the caller (ACL, rate limit) and find where to forward; a card that cannot
    be fetched is logged as an unreachable call and answered with its problem."""
    hub = _hub(request)
    plan = await plan_call(
        _database(request),
        _limiter(request),
        agent_id=agent_id,
        principal=principal,
        cache=hub.plans,
    )
    try:
        upstream = await _upstream(request, plan)
    except HubError as exc:
        _record_unreachable(hub, plan, exc, channel=channel)
        raise
    return _gateway_call(
        plan, upstream, channel=channel, timeout=hub.settings.a2a_call_timeout_seconds
    )


def _gateway_call(
    plan: CallPlan, upstream: Upstream, *, channel: str, timeout: float
) -> GatewayCall:
    return GatewayCall(
        caller=plan.caller,
        caller_key=plan.caller_key,
        upstream=upstream,
        channel=channel,
        call_timeout=timeout,
        started_at=utcnow(),
    )


def _failure_response(failure: UpstreamFailure, agent_id: uuid.UUID) -> JSONResponse:
    return problem_response(
        status=failure.status,
        code=failure.code,
        detail=failure.detail,
        extra={"agent_id": str(agent_id)},
    )


# ---- the agent's card, served by the hub ----


async def _served_card(
    request: Request, session: ReadSession, agent_id: uuid.UUID, principal: OptionalPrincipal
) -> Response:
    agent = await _visible_agent(session, agent_id, Viewer.of(principal))
    record = await session.get(AgentCardRecord, agent.id)
    if record is None and agent.endpoint_url:
        record = await _hub(request).refresh_card(agent.id)
    if record is None or record.card is None:
        raise HubError(
            "This agent has no A2A card: it enrolled without an endpoint_url, or its card "
            "could not be fetched yet.",
            status=404,
            code="no_agent_card",
        )
    fetched = validate_card(record.card, card_url=record.card_url or "")
    runtime = request.app.state.runtime
    card = hub_card(fetched.card, public_url=runtime.settings.public_url, agent_id=agent.id)
    headers = {"Cache-Control": "public, max-age=60"} if agent.is_public else {}
    return JSONResponse(card, headers=headers)


@gateway_router.get(
    "/{agent_id}/.well-known/agent-card.json",
    operation_id="get_hub_agent_card",
    description="The agent's A2A Agent Card as the hub serves it: the agent's skills, with "
    "interfaces at the hub (JSON-RPC, A2A 1.0 and 0.3) and the hub's bearer authentication. "
    "Public agents' cards are public; a private agent's card needs a caller allowed to see it.",
)
async def get_agent_card(
    request: Request, agent_id: uuid.UUID, session: ReadSession, principal: OptionalPrincipal
) -> Response:
    return await _served_card(request, session, agent_id, principal)


@gateway_router.get(
    "/{agent_id}/.well-known/agent.json",
    operation_id="get_hub_agent_card_legacy",
    description="The same card at the A2A 0.x path.",
)
async def get_agent_card_legacy(
    request: Request, agent_id: uuid.UUID, session: ReadSession, principal: OptionalPrincipal
) -> Response:
    return await _served_card(request, session, agent_id, principal)


# ---- the JSON-RPC endpoint ----


@gateway_router.post(
    "/{agent_id}",
    operation_id="call_agent_jsonrpc",
    description="A2A JSON-RPC (1.0, and 0.3 method names) for the agent: SendMessage, "
    "SendStreamingMessage (SSE), GetTask, CancelTask, SubscribeToTask, forwarded to the agent "
    "after the caller is authenticated, checked against the agent's ACL and rate limit. An "
    "unreachable agent answers 502 or 504 problem+json; errors the agent returns pass "
    "through as JSON-RPC errors.",
)
async def a2a_jsonrpc(
    request: Request, agent_id: uuid.UUID, principal: CurrentPrincipal
) -> Response:
    hub = _hub(request)
    call = await _authorized_call(request, agent_id, principal, channel="a2a")
    request.state.hermes_call = call
    response = await hub.dispatcher.handle_requests(request)
    if isinstance(response, EventSourceResponse) and call.failure is None:
        # The stream's end is logged when it ends.
        response.background = BackgroundTask(_StreamEnd(call, hub))
        return response
    if not call.handled:
        _note_invalid(call, await _payload(request), response)
    call.record(hub.recorder)
    if call.failure is not None:
        return _failure_response(call.failure, agent_id)
    return response


async def _payload(request: Request) -> Any:
    """The request body as JSON (Starlette caches the dispatcher's read), or None."""
    try:
        return await request.json()
    except ValueError:  # the dispatcher answers bad JSON with its own error
        return None


def _note_invalid(call: GatewayCall, payload: Any, response: Response) -> None:
    """Log a request the dispatcher refused with its method and the error it answered."""
    method = payload.get("method") if isinstance(payload, dict) else None
    if isinstance(method, str):
        call.method = method
    error = None
    with contextlib.suppress(ValueError, TypeError, AttributeError):
        error = str(json.loads(bytes(response.body))["error"]["message"])
    call.finish("invalid_request", error)


class _StreamEnd:
    """Starlette runs a response's background task after the body is sent: log the call."""

    def __init__(self, call: GatewayCall, hub: A2AHub) -> None:
        self._call = call
        self._hub = hub

    async def __call__(self) -> None:
        # No outcome yet: the stream stopped without the agent ending or failing it, which
        # is the caller going away (not held against the agent).
        self._call.finish("canceled")
        self._call.record(self._hub.recorder)


def _record_unreachable(hub: A2AHub, plan: CallPlan, exc: HubError, *, channel: str) -> None:
    placeholder = Upstream(plan.agent_id, plan.endpoint_url, "", streaming=False)
    call = _gateway_call(plan, placeholder, channel=channel, timeout=0)
    call.method = "card"
    call.finish("unreachable", exc.detail)
    call.record(hub.recorder)


# ---- the hub's AI Catalog ----


@catalog_router.get(
    "/.well-known/ai-catalog.json",
    operation_id="ai_catalog",
    description="An AI Catalog (specVersion 1.0) of the hub's public agents with an A2A card: "
    "one entry per agent, pointing at the card the hub serves for it.",
)
async def ai_catalog(request: Request, session: ReadSession, runtime: RuntimeDep) -> Response:
    public_url = runtime.settings.public_url
    host = public_url.split("://", 1)[-1].split("/", 1)[0]
    rows = await session.execute(
        select(Agent, AgentCardRecord)
        .join(AgentCardRecord, AgentCardRecord.agent_id == Agent.id)
        .where(
            Agent.is_public.is_(True),
            Agent.status == AgentStatus.ACTIVE.value,
            Agent.endpoint_url.is_not(None),
            AgentCardRecord.card.is_not(None),
        )
        .order_by(Agent.created_at, Agent.id)
    )
    entries = [
        {
            "identifier": f"urn:ai:{host}:agent:{agent.id}",
            "displayName": agent.name,
            "type": A2A_CARD_MEDIA_TYPE,
            "url": f"{gateway_url(public_url, agent.id)}/.well-known/agent-card.json",
            "description": agent.description,
            "capabilities": agent.capabilities,
            "updatedAt": (record.fetched_at or agent.updated_at).isoformat(),
        }
        for agent, record in rows
    ]
    catalog = {
        "specVersion": AI_CATALOG_SPEC_VERSION,
        "host": {"displayName": "Hermes Hub", "identifier": host},
        "entries": entries,
    }
    return JSONResponse(
        catalog,
        headers={"Access-Control-Allow-Origin": "*", "Cache-Control": "public, max-age=60"},
    )


# ---- card management and the call log ----


class CardOut(OutputModel):
    agent_id: uuid.UUID
    endpoint_url: str | None
    card_url: str | None
    hub_card_url: str
    rpc_url: str | None
    protocol_version: str | None
    fetched_at: datetime | None
    checked_at: datetime | None
    consecutive_failures: int
    last_error: str | None
    unavailable: bool
    card: dict[str, Any] | None


def _card_out(agent: Agent, record: AgentCardRecord | None, public_url: str) -> CardOut:
    return CardOut(
        agent_id=agent.id,
        endpoint_url=agent.endpoint_url,
        card_url=record.card_url if record else None,
        hub_card_url=f"{gateway_url(public_url, agent.id)}/.well-known/agent-card.json",
        rpc_url=record.rpc_url if record else None,
        protocol_version=record.protocol_version if record else None,
        fetched_at=record.fetched_at if record else None,
        checked_at=record.checked_at if record else None,
        consecutive_failures=record.consecutive_failures if record else 0,
        last_error=record.last_error if record else None,
        unavailable=record.unavailable if record else False,
        card=record.card if record else None,
    )


@api_router.get(
    "/{agent_id}/card",
    response_model=CardOut,
    operation_id="get_agent_card_status",
    description="The agent's A2A card as last fetched from its endpoint, and its health.",
)
async def get_card_status(
    agent_id: uuid.UUID, session: ReadSession, principal: CurrentPrincipal, runtime: RuntimeDep
) -> CardOut:
    agent = await _visible_agent(session, agent_id, Viewer.of(principal))
    record = await session.get(AgentCardRecord, agent.id)
    return _card_out(agent, record, runtime.settings.public_url)


@api_router.post(
    "/{agent_id}/card/refresh",
    response_model=CardOut,
    operation_id="refresh_agent_card",
    description="Fetch the agent's card from its endpoint now (owner or organization "
    "managers). 422 endpoint_not_allowed for a private address; 502/504 for a card that is "
    "missing, too big, slow or not valid A2A; the failure counts as a failed health check.",
)
async def refresh_card(
    request: Request, agent_id: uuid.UUID, user: CurrentUser, runtime: RuntimeDep
) -> CardOut:
    database = _database(request)
    async with database.read_sessions() as session:
        await permissions.managed_agent(session, agent_id=agent_id, user=user)
    record = await _hub(request).refresh_card(agent_id)
    async with database.read_sessions() as session:
        agent = await session.get(Agent, agent_id)
        assert agent is not None  # noqa: S101 - just refreshed
        return _card_out(agent, record, runtime.settings.public_url)


class CallOut(OutputModel):
    id: uuid.UUID
    target_agent_id: uuid.UUID
    caller_agent_id: uuid.UUID | None
    caller_user_id: uuid.UUID | None
    channel: str
    method: str
    started_at: datetime
    latency_ms: float
    outcome: str
    error: str | None


@api_router.get(
    "/{agent_id}/calls",
    response_model=Page[CallOut],
    operation_id="list_agent_calls",
    description="Calls made to the agent through the hub, newest first (owner or "
    "organization managers): caller, method, latency and outcome.",
)
async def list_calls(
    agent_id: uuid.UUID,
    user: CurrentUser,
    session: ReadSession,
    paging: Annotated[PageParams, Depends(page_params)],
) -> Page[CallOut]:
    agent = await permissions.managed_agent(session, agent_id=agent_id, user=user)
    total = await session.scalar(
        select(func.count()).select_from(AgentCall).where(AgentCall.target_agent_id == agent.id)
    )
    rows = await session.scalars(
        select(AgentCall)
        .where(AgentCall.target_agent_id == agent.id)
        .order_by(AgentCall.started_at.desc(), AgentCall.id)
        .limit(paging.limit)
        .offset(paging.offset)
    )
    return Page(
        items=[CallOut.model_validate(row) for row in rows],
        total=total or 0,
        limit=paging.limit,
        offset=paging.offset,
    )


# ---- the execute API ----


class ExecuteIn(InputModel):
    agent_id: uuid.UUID
    task: str = Field(min_length=1, max_length=100_000)
    context: dict[str, Any] | None = None
    stream: bool = False


def _request_of(body: ExecuteIn) -> SendMessageRequest:
    message = Message(role=Role.ROLE_USER, message_id=str(uuid.uuid4()))
    message.parts.append(Part(text=body.task))
    if body.context:
        message.parts.append(Part(data=ParseDict(body.context, Value())))
    return SendMessageRequest(message=message)


def _parts_out(parts: Any) -> dict[str, Any]:
    texts = [part.text for part in parts if part.WhichOneof("content") == "text"]
    data = [MessageToDict(part.data) for part in parts if part.WhichOneof("content") == "data"]
    return {"text": "\n".join(texts), "data": data}


def _result_of(event: Task | Message) -> dict[str, Any]:
    if isinstance(event, Message):
        return {
            "kind": "message",
            "state": "completed",
            "task_id": event.task_id or None,
            "context_id": event.context_id or None,
            "output": _parts_out(event.parts),
            "artifacts": [],
        }
    parts = [part for artifact in event.artifacts for part in artifact.parts]
    if event.status.HasField("message"):
        parts.extend(event.status.message.parts)
    return {
        "kind": "task",
        "state": _state_name(event.status.state),
        "task_id": event.id,
        "context_id": event.context_id or None,
        "output": _parts_out(parts),
        "artifacts": [MessageToDict(artifact) for artifact in event.artifacts],
    }


def _state_name(state: int) -> str:
    return str(TaskState.Name(state)).removeprefix("TASK_STATE_").lower()


@api_router.post(
    "/execute",
    operation_id="execute_agent",
    description="Call an agent without speaking A2A (seed 001): the task text (and optional "
    "context object) go to the agent as an A2A message. Returns the result; with "
    "stream=true, Server-Sent Events (task, message, status, artifact, then done). The same "
    "ACL, rate limit, logging and 502/504 problems as the A2A endpoint.",
)
async def execute(request: Request, body: ExecuteIn, principal: CurrentPrincipal) -> Response:
    hub = _hub(request)
    call = await _authorized_call(request, body.agent_id, principal, channel="execute")
    upstream = call.upstream
    call.method = "SendStreamingMessage" if body.stream else "SendMessage"
    message = _request_of(body)
    if body.stream and upstream.streaming:
        return await _execute_stream(hub, call, message)
    try:
        async with (
            hub.pool.lease(upstream, streaming=False) as client,
            deadline(call.call_timeout, what="the agent's answer"),
        ):
            async for response in client.send_message(message):
                event = getattr(response, response.WhichOneof("payload") or "task")
                hub.recorder.remember_task(upstream.agent_id, _task_of(event), call.caller_key)
                call.finish("ok" if not _failed(event) else "agent_error")
                call.record(hub.recorder)
                result = {"agent_id": str(upstream.agent_id), **_result_of(event)}
                if body.stream:
                    return _single_event_stream(result)
                return JSONResponse(result)
    except Exception as exc:
        failure = classify(exc) or UpstreamFailure(
            "agent_error", 502, "agent_error", f"The agent refused the call: {exc}"
        )
        call.fail(failure)
        call.record(hub.recorder)
        return _failure_response(failure, upstream.agent_id)
    failure = call.fail(
        UpstreamFailure("malformed", 502, "agent_malformed_response", "The agent sent no answer.")
    )
    call.record(hub.recorder)
    return _failure_response(failure, upstream.agent_id)


def _task_of(event: Any) -> str:
    if isinstance(event, Task):
        return event.id
    return str(getattr(event, "task_id", "") or "")


def _failed(event: Any) -> bool:
    return isinstance(event, Task) and event.status.state in (
        TaskState.TASK_STATE_FAILED,
        TaskState.TASK_STATE_REJECTED,
    )


def _sse(event: str, data: dict[str, Any]) -> bytes:
    return f"event: {event}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n".encode()


def _single_event_stream(result: dict[str, Any]) -> StreamingResponse:
    async def body() -> AsyncIterator[bytes]:
        yield _sse("result", result)
        yield _sse("done", {"state": result["state"]})

    return StreamingResponse(body(), media_type="text/event-stream")


_STREAM_EVENT_NAMES: dict[str, Literal["task", "message", "status", "artifact"]] = {
    "task": "task",
    "message": "message",
    "status_update": "status",
    "artifact_update": "artifact",
}


async def _execute_stream(hub: A2AHub, call: GatewayCall, message: SendMessageRequest) -> Response:
    # The lease lasts as long as the stream does: it ends in body()'s finally.
    lease = contextlib.AsyncExitStack()
    client = await lease.enter_async_context(hub.pool.lease(call.upstream, streaming=True))
    stream = client.send_message(message)
    # The first event decides between a 200 stream and a 502/504 problem.
    try:
        first: StreamResponse = await anext(aiter(stream))
    except StopAsyncIteration:
        first = StreamResponse()
    except Exception as exc:
        await lease.aclose()
        failure = classify(exc) or UpstreamFailure(
            "agent_error", 502, "agent_error", f"The agent refused the call: {exc}"
        )
        call.fail(failure)
        call.record(hub.recorder)
        return _failure_response(failure, call.upstream.agent_id)

    async def body() -> AsyncIterator[bytes]:
        last_state = "unknown"
        try:
            response: StreamResponse | None = first
            while response is not None:
                kind = response.WhichOneof("payload")
                if kind is not None:
                    event = getattr(response, kind)
                    hub.recorder.remember_task(
                        call.upstream.agent_id, _task_of(event), call.caller_key
                    )
                    payload = MessageToDict(event)
                    if kind == "task" or kind == "status_update":
                        last_state = _state_name(event.status.state)
                    elif kind == "message":
                        last_state = "completed"
                    yield _sse(_STREAM_EVENT_NAMES[kind], payload)
                response = await anext(stream, None)
            call.finish("ok")
            yield _sse("done", {"state": last_state})
        except Exception as exc:
            failure = classify(exc) or UpstreamFailure(
                "agent_error", 502, "agent_error", f"The agent failed the call: {exc}"
            )
            failure.outcome = "dropped"
            call.fail(failure)
            yield _sse(
                "error",
                {"status": failure.status, "code": failure.code, "detail": failure.detail},
            )
        finally:
            await lease.aclose()
            # Closed before the agent ended or failed the stream: the caller went away.
            call.finish("canceled")
            call.record(hub.recorder)

    return StreamingResponse(body(), media_type="text/event-stream")


routers = (gateway_router, catalog_router, api_router)
