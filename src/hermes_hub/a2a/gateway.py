"""The hub as an A2A server for every agent with an endpoint: a2a-sdk's JSON-RPC dispatcher in
front, a2a-sdk's client behind, and this request handler forwarding between them.

The HTTP route authenticates and authorizes the caller first (``service.authorize_call``),
then hands the request to the dispatcher with the call's ``GatewayCall`` in the context. The
handler forwards, remembers which caller owns each task, and notes how the call ended so the
route can log it and turn an unreachable agent into a 502/504 problem.
"""

from __future__ import annotations

import time
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable
from dataclasses import dataclass, field
from datetime import datetime

from a2a.server.context import ServerCallContext
from a2a.server.events.event_queue import Event
from a2a.server.request_handlers.request_handler import RequestHandler
from a2a.server.routes.common import DefaultServerCallContextBuilder
from a2a.types.a2a_pb2 import (
    AgentCard,
    CancelTaskRequest,
    DeleteTaskPushNotificationConfigRequest,
    GetExtendedAgentCardRequest,
    GetTaskPushNotificationConfigRequest,
    GetTaskRequest,
    ListTaskPushNotificationConfigsRequest,
    ListTaskPushNotificationConfigsResponse,
    ListTasksRequest,
    ListTasksResponse,
    Message,
    SendMessageRequest,
    StreamResponse,
    SubscribeToTaskRequest,
    Task,
    TaskPushNotificationConfig,
)
from a2a.utils.errors import (
    A2AError,
    ContentTypeNotSupportedError,
    ExtensionSupportRequiredError,
    InvalidParamsError,
    InvalidRequestError,
    JSONParseError,
    MethodNotFoundError,
    TaskNotCancelableError,
    TaskNotFoundError,
    UnsupportedOperationError,
    VersionNotSupportedError,
)
from starlette.requests import Request

from hermes_hub.a2a.calls import CallRecord, CallRecorder
from hermes_hub.a2a.upstream import Upstream, UpstreamFailure, UpstreamPool, classify
from hermes_hub.identity.acl import Caller
from hermes_hub.kit.safe_http import deadline

CALL_STATE_KEY = "hermes_call"
# Errors an agent answers because of what the caller sent or asked: logged as the caller's
# invalid request, not as the agent failing (trust counts agent errors against the agent).
CALLERS_FAULT: tuple[type[A2AError], ...] = (
    ContentTypeNotSupportedError,
    ExtensionSupportRequiredError,
    InvalidParamsError,
    InvalidRequestError,
    JSONParseError,
    MethodNotFoundError,
    TaskNotCancelableError,
    UnsupportedOperationError,
    VersionNotSupportedError,
)
MAX_METHOD_LENGTH = 48


@dataclass
class GatewayCall:
    """One authorized call: who calls which agent where, and (once known) how it ended."""

    caller: Caller
    caller_key: str
    upstream: Upstream
    channel: str
    call_timeout: float
    started_at: datetime
    started: float = field(default_factory=time.perf_counter)
    method: str = ""
    # Set once the request reached the handler: a valid JSON-RPC request for an A2A method.
    handled: bool = False
    outcome: str | None = None
    error: str | None = None
    failure: UpstreamFailure | None = None

    def finish(self, outcome: str, error: str | None = None) -> None:
        if self.outcome is None:
            self.outcome = outcome
            self.error = error

    def answered(self, error: A2AError) -> None:
        """The agent answered with an A2A error, passed on to the caller as it is."""
        self.finish(
            "invalid_request" if isinstance(error, CALLERS_FAULT) else "agent_error", str(error)
        )

    def fail(self, failure: UpstreamFailure) -> UpstreamFailure:
        self.failure = failure
        self.finish(failure.outcome, failure.detail)
        return failure

    def record(self, recorder: CallRecorder) -> None:
        recorder.record(
            CallRecord(
                target_agent_id=self.upstream.agent_id,
                caller_agent_id=self.caller.agent_id,
                caller_user_id=None if self.caller.agent_id else self.caller.user_id,
                caller_owner_id=self.caller.user_id,
                channel=self.channel,
                method=self.method[:MAX_METHOD_LENGTH] or "unknown",
                started_at=self.started_at,
                latency_ms=(time.perf_counter() - self.started) * 1000,
                # A request the dispatcher refused (bad JSON, unknown method, invalid params)
                # never reached the agent: the caller's fault, not the agent's.
                outcome=self.outcome or ("ok" if self.handled else "invalid_request"),
                error=self.error,
            )
        )


class GatewayContextBuilder(DefaultServerCallContextBuilder):
    """Carries the route's ``GatewayCall`` into the handler's context."""

    def build(self, request: Request) -> ServerCallContext:
        context = super().build(request)
        context.state[CALL_STATE_KEY] = request.state.hermes_call
        return context


def _call(context: ServerCallContext) -> GatewayCall:
    call: GatewayCall = context.state[CALL_STATE_KEY]
    call.method = str(context.state.get("method") or call.method)
    call.handled = True
    return call


def _event_of(response: StreamResponse) -> Event:
    kind = response.WhichOneof("payload")
    if kind is None:
        raise UpstreamFailure(
            "malformed", 502, "agent_malformed_response", "The agent sent an empty stream event."
        )
    event: Event = getattr(response, kind)
    return event


def _task_id_of(event: Event) -> str:
    if isinstance(event, Task):
        return event.id
    if isinstance(event, Message):
        return event.task_id
    return str(getattr(event, "task_id", ""))


class HubRequestHandler(RequestHandler):
    """Forwards each A2A method to the agent named by the call."""

    def __init__(self, pool: UpstreamPool, recorder: CallRecorder) -> None:
        self._pool = pool
        self._recorder = recorder

    async def _own(self, call: GatewayCall, task_id: str) -> None:
        """Refuse a task another caller started, as if it did not exist."""
        owner = await self._recorder.task_owner(call.upstream.agent_id, task_id)
        if owner != call.caller_key:
            call.finish("rejected", "task not found for this caller")
            raise TaskNotFoundError

    async def _forward_one(self, call: GatewayCall, stream: AsyncIterator[StreamResponse]) -> Event:
        try:
            async with deadline(call.call_timeout, what="the agent's answer"):
                async for response in stream:
                    event = _event_of(response)
                    self._recorder.remember_task(
                        call.upstream.agent_id, _task_id_of(event), call.caller_key
                    )
                    call.finish("ok")
                    return event
        except A2AError as exc:
            failure = classify(exc)
            if failure is None:
                call.answered(exc)
                raise
            raise call.fail(failure) from exc
        except Exception as exc:
            raise call.fail(
                classify(exc)
                or UpstreamFailure("malformed", 502, "agent_malformed_response", str(exc))
            ) from exc
        raise call.fail(
            UpstreamFailure(
                "malformed", 502, "agent_malformed_response", "The agent sent no answer."
            )
        )

    async def _forward_stream(
        self, call: GatewayCall, stream: AsyncIterator[StreamResponse]
    ) -> AsyncGenerator[Event]:
        started = False
        try:
            async for response in stream:
                event = _event_of(response)
                self._recorder.remember_task(
                    call.upstream.agent_id, _task_id_of(event), call.caller_key
                )
                started = True
                yield event
            call.finish("ok")
        except A2AError as exc:
            failure = classify(exc)
            if failure is None:
                call.answered(exc)
                raise
            if started:
                # Half way through: the caller already has a 200 stream; end it with an
                # A2A error event and record the drop.
                failure.outcome = "dropped"
            raise call.fail(failure) from exc
        except Exception as exc:
            failure = classify(exc) or UpstreamFailure(
                "malformed", 502, "agent_malformed_response", str(exc)
            )
            if started:
                failure.outcome = "dropped"
            raise call.fail(failure) from exc

    # ---- forwarded methods ----

    async def on_message_send(
        self, params: SendMessageRequest, context: ServerCallContext
    ) -> Task | Message:
        call = _call(context)
        _require_message(call, params)
        async with self._pool.lease(call.upstream, streaming=False) as client:
            event = await self._forward_one(call, client.send_message(params))
        if not isinstance(event, Task | Message):
            raise call.fail(
                UpstreamFailure(
                    "malformed",
                    502,
                    "agent_malformed_response",
                    "The agent answered SendMessage with neither a task nor a message.",
                )
            )
        return event

    async def on_message_send_stream(
        self, params: SendMessageRequest, context: ServerCallContext
    ) -> AsyncGenerator[Event]:
        call = _call(context)
        _require_message(call, params)
        async with self._pool.lease(call.upstream, streaming=True) as client:
            async for event in self._forward_stream(call, client.send_message(params)):
                yield event

    async def on_get_task(self, params: GetTaskRequest, context: ServerCallContext) -> Task | None:
        call = _call(context)
        await self._own(call, params.id)
        async with self._pool.lease(call.upstream, streaming=False) as client:
            return await self._forward_task(call, client.get_task(params))

    async def on_cancel_task(
        self, params: CancelTaskRequest, context: ServerCallContext
    ) -> Task | None:
        call = _call(context)
        await self._own(call, params.id)
        async with self._pool.lease(call.upstream, streaming=False) as client:
            return await self._forward_task(call, client.cancel_task(params))

    async def _forward_task(self, call: GatewayCall, pending: Awaitable[Task]) -> Task:
        async def one() -> AsyncIterator[StreamResponse]:
            yield StreamResponse(task=await pending)

        event = await self._forward_one(call, one())
        assert isinstance(event, Task)  # noqa: S101 - built just above
        return event

    async def on_subscribe_to_task(
        self, params: SubscribeToTaskRequest, context: ServerCallContext
    ) -> AsyncGenerator[Event]:
        call = _call(context)
        await self._own(call, params.id)
        async with self._pool.lease(call.upstream, streaming=True) as client:
            async for event in self._forward_stream(call, client.subscribe(params)):
                yield event

    # ---- not offered through the hub ----

    async def on_list_tasks(
        self, params: ListTasksRequest, context: ServerCallContext
    ) -> ListTasksResponse:
        # The agent would list every caller's tasks; the hub shows each caller only theirs,
        # one at a time, with GetTask.
        raise _refused(context, "ListTasks is not offered through the hub.")

    async def on_create_task_push_notification_config(
        self, params: TaskPushNotificationConfig, context: ServerCallContext
    ) -> TaskPushNotificationConfig:
        raise _no_push(context)

    async def on_get_task_push_notification_config(
        self, params: GetTaskPushNotificationConfigRequest, context: ServerCallContext
    ) -> TaskPushNotificationConfig:
        raise _no_push(context)

    async def on_list_task_push_notification_configs(
        self, params: ListTaskPushNotificationConfigsRequest, context: ServerCallContext
    ) -> ListTaskPushNotificationConfigsResponse:
        raise _no_push(context)

    async def on_delete_task_push_notification_config(
        self, params: DeleteTaskPushNotificationConfigRequest, context: ServerCallContext
    ) -> None:
        raise _no_push(context)

    async def on_get_extended_agent_card(
        self, params: GetExtendedAgentCardRequest, context: ServerCallContext
    ) -> AgentCard:
        raise _refused(context, "The hub serves no extended agent cards.")


def _require_message(call: GatewayCall, params: SendMessageRequest) -> None:
    """a2a-sdk's dispatcher lets a SendMessage without a message through; no agent can act
    on one, so it stops here as the caller's mistake."""
    if not params.HasField("message") or not params.message.parts:
        error = InvalidParamsError(message="SendMessage needs a message with at least one part.")
        call.finish("invalid_request", str(error))
        raise error


def _refused(context: ServerCallContext, message: str) -> UnsupportedOperationError:
    """A method the hub does not offer: logged as the caller's invalid request."""
    _call(context).finish("invalid_request", message)
    return UnsupportedOperationError(message=message)


def _no_push(context: ServerCallContext) -> UnsupportedOperationError:
    return _refused(
        context, "Push notifications are not relayed by the hub; use SendStreamingMessage."
    )
