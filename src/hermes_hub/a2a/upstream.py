"""Calling agents: stock ``a2a-sdk`` clients over SSRF-guarded HTTP, and what their failures mean.

One HTTP client per upstream origin keeps connections alive between calls to the same
agent host, and only to that host: a pinned connection is never shared between two names
that resolve to the same address.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import httpx
from a2a.client import Client, ClientConfig, ClientFactory
from a2a.client.errors import A2AClientError, A2AClientTimeoutError
from a2a.types.a2a_pb2 import AgentCard, AgentInterface
from a2a.utils.errors import A2AError

from hermes_hub.kit.safe_http import (
    FetchTimeoutError,
    GuardedTransport,
    OutboundBlockedError,
    OutboundPolicy,
)

A2A_VERSION_HEADER = "A2A-Version"


@dataclass(frozen=True)
class Upstream:
    """Where and how to call one agent, from its stored card."""

    agent_id: uuid.UUID
    rpc_url: str
    protocol_version: str
    streaming: bool

    def card(self) -> AgentCard:
        """A minimal card with only the interface the hub chose, for ``ClientFactory``."""
        card = AgentCard(name=str(self.agent_id))
        card.supported_interfaces.append(
            AgentInterface(
                url=self.rpc_url, protocol_binding="JSONRPC", protocol_version=self.protocol_version
            )
        )
        card.capabilities.streaming = self.streaming
        return card


class UpstreamFailure(A2AError):
    """The agent could not be reached or answered with something that is not A2A.

    An ``A2AError`` so a2a-sdk's dispatcher answers it without logging a crash; the gateway
    then replaces that answer with a 502 or 504 problem.
    """

    def __init__(self, outcome: str, status: int, code: str, detail: str) -> None:
        super().__init__(detail)
        self.outcome = outcome
        self.status = status
        self.code = code
        self.detail = detail


def classify(exc: BaseException) -> UpstreamFailure | None:
    """What an exception from an upstream call means for the caller, or None when it is an
    A2A error the agent answered on purpose (those pass through to the caller as is)."""
    if isinstance(exc, UpstreamFailure):
        return exc
    if isinstance(exc, A2AClientTimeoutError | FetchTimeoutError | TimeoutError):
        return UpstreamFailure("timeout", 504, "agent_timeout", "The agent did not answer in time.")
    if isinstance(exc, A2AClientError):
        cause = exc.__cause__
        if isinstance(cause, OutboundBlockedError):
            return UpstreamFailure(
                "unreachable",
                502,
                "agent_endpoint_blocked",
                f"The agent's endpoint is not allowed: {cause}.",
            )
        if isinstance(cause, httpx.TimeoutException):
            return UpstreamFailure(
                "timeout", 504, "agent_timeout", "The agent did not answer in time."
            )
        if isinstance(cause, httpx.HTTPStatusError):
            return UpstreamFailure(
                "agent_error",
                502,
                "agent_error",
                f"The agent answered HTTP {cause.response.status_code}.",
            )
        if isinstance(cause, httpx.RequestError):
            return UpstreamFailure(
                "unreachable", 502, "agent_unreachable", f"The agent is unreachable: {cause}."
            )
        return UpstreamFailure(
            "malformed",
            502,
            "agent_malformed_response",
            f"The agent's answer is not valid A2A: {exc}.",
        )
    if isinstance(exc, A2AError):
        return None
    if isinstance(exc, OutboundBlockedError):
        return UpstreamFailure(
            "unreachable",
            502,
            "agent_endpoint_blocked",
            f"The agent's endpoint is not allowed: {exc}.",
        )
    if isinstance(exc, httpx.TimeoutException):
        return UpstreamFailure("timeout", 504, "agent_timeout", "The agent did not answer in time.")
    if isinstance(exc, httpx.RequestError):
        return UpstreamFailure(
            "unreachable", 502, "agent_unreachable", f"The agent is unreachable: {exc}."
        )
    # Anything else came out of parsing what the agent sent (protobuf, JSON, SSE framing).
    return UpstreamFailure(
        "malformed", 502, "agent_malformed_response", f"The agent's answer is not valid A2A: {exc}."
    )


@dataclass
class _Shard:
    http: httpx.AsyncClient
    clients: dict[tuple[Upstream, bool], Client] = field(default_factory=dict)
    in_flight: int = 0


class UpstreamPool:
    """HTTP clients per upstream origin, in shards of a few connections each.

    httpcore scans every connection of a pool (with a socket poll for each idle one) twice
    per request, so one big pool costs more per call the busier it gets. Small pools keep
    that scan short; a call takes the least busy shard, and a new shard opens when all are
    full, up to ``MAX_SHARDS``.
    """

    CONNECTIONS_PER_SHARD = 4
    MAX_SHARDS = 64

    def __init__(self, policy: OutboundPolicy, *, call_timeout: float) -> None:
        self._policy = policy
        self._timeout = httpx.Timeout(
            connect=policy.connect_timeout, read=call_timeout, write=call_timeout, pool=call_timeout
        )
        self._shards: dict[tuple[str, str, int | None, str], list[_Shard]] = {}

    def _new_shard(self) -> _Shard:
        limits = httpx.Limits(
            max_connections=self.CONNECTIONS_PER_SHARD,
            max_keepalive_connections=self.CONNECTIONS_PER_SHARD,
        )
        http = httpx.AsyncClient(
            transport=GuardedTransport(self._policy, inner=httpx.AsyncHTTPTransport(limits=limits)),
            timeout=self._timeout,
            # A JSON-RPC POST is not re-sent to wherever a redirect points.
            follow_redirects=False,
            trust_env=False,
        )
        return _Shard(http)

    def _shard_for(self, upstream: Upstream) -> _Shard:
        parts = urlsplit(upstream.rpc_url)
        key = (parts.scheme, parts.hostname or "", parts.port, upstream.protocol_version)
        shards = self._shards.setdefault(key, [])
        best = min(shards, key=lambda shard: shard.in_flight, default=None)
        if best is None or (
            best.in_flight >= self.CONNECTIONS_PER_SHARD and len(shards) < self.MAX_SHARDS
        ):
            best = self._new_shard()
            shards.append(best)
        return best

    @contextlib.asynccontextmanager
    async def lease(self, upstream: Upstream, *, streaming: bool) -> AsyncIterator[Client]:
        """An a2a-sdk client for the agent, counted as busy until the block ends."""
        shard = self._shard_for(upstream)
        key = (upstream, streaming)
        client = shard.clients.get(key)
        if client is None:
            config = ClientConfig(streaming=streaming, httpx_client=shard.http)
            client = ClientFactory(config).create(upstream.card())
            shard.clients[key] = client
        shard.in_flight += 1
        try:
            yield client
        finally:
            shard.in_flight -= 1

    def forget(self, agent_id: uuid.UUID) -> None:
        """Drop cached clients for an agent whose card changed (the HTTP pools stay)."""
        for shards in self._shards.values():
            for shard in shards:
                for key in [key for key in shard.clients if key[0].agent_id == agent_id]:
                    del shard.clients[key]

    async def aclose(self) -> None:
        all_shards = [shard for shards in self._shards.values() for shard in shards]
        self._shards = {}
        for shard in all_shards:
            await shard.http.aclose()
