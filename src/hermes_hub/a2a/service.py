"""Agent cards on file, and the checks every call passes before the hub forwards it.

No database session is held while the hub talks to an agent: a fetch or a call can take
seconds, and on SQLite an open write transaction would hold up every other writer.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from datetime import datetime

from limits import parse
from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from hermes_hub.a2a.cards import FetchedCard, derived_capabilities, merge_capabilities
from hermes_hub.a2a.models import AgentCardRecord
from hermes_hub.a2a.upstream import Upstream
from hermes_hub.db.session import Database
from hermes_hub.db.transaction import in_transaction
from hermes_hub.errors import HubError
from hermes_hub.events.log import publish, user_recipient
from hermes_hub.identity import permissions
from hermes_hub.identity.acl import Caller, Decision, Verdict
from hermes_hub.identity.errors import AgentNotFoundError
from hermes_hub.identity.models import Agent, AgentStatus
from hermes_hub.identity.principal import Principal
from hermes_hub.kit.ratelimit import RateLimiter
from hermes_hub.kit.time import utcnow

AGENT_UNAVAILABLE_EVENT = "agent.unavailable"
AGENT_AVAILABLE_EVENT = "agent.available"


@dataclass(frozen=True)
class CallPlan:
    """An authorized call: the target, the caller, and where to send it (None until the
    agent's card has been fetched)."""

    agent_id: uuid.UUID
    agent_name: str
    endpoint_url: str
    caller: Caller
    caller_key: str
    decision: Decision
    upstream: Upstream | None


def upstream_of(record: AgentCardRecord | None) -> Upstream | None:
    if record is None or record.rpc_url is None or record.card is None:
        return None
    capabilities = record.card.get("capabilities")
    streaming = bool(capabilities.get("streaming")) if isinstance(capabilities, dict) else False
    return Upstream(
        agent_id=record.agent_id,
        rpc_url=record.rpc_url,
        protocol_version=record.protocol_version or "0.3",
        streaming=streaming,
    )


def _refusal(agent: Agent, decision: Decision) -> HubError:
    if decision.reason == "not_permitted" and not agent.is_public:
        # A private agent the caller may not call is one it may not see either.
        return AgentNotFoundError("No such agent.")
    return HubError(
        "You may not call this agent."
        if decision.reason == "not_permitted"
        else "The agent's owner has denied your calls.",
        status=403,
        code="call_not_permitted" if decision.reason == "not_permitted" else "call_denied",
    )


class PlanCache:
    """Recent call plans per (agent, caller), so a busy caller's calls skip the ACL queries.

    Only allowed plans are kept, for ``ttl`` seconds: a rule, visibility or status change
    reaches a cached caller within that time (at once on the worker that made the change,
    which calls ``forget``). Rate limits are counted on every call regardless.
    """

    MAX_ENTRIES = 50_000

    def __init__(self, ttl: float) -> None:
        self._ttl = ttl
        self._plans: dict[tuple[uuid.UUID, str], tuple[float, CallPlan]] = {}

    def get(self, agent_id: uuid.UUID, caller_key: str) -> CallPlan | None:
        found = self._plans.get((agent_id, caller_key))
        if found is None:
            return None
        expires, plan = found
        if time.monotonic() >= expires:
            del self._plans[(agent_id, caller_key)]
            return None
        return plan

    def put(self, plan: CallPlan) -> None:
        if self._ttl <= 0:
            return
        if len(self._plans) >= self.MAX_ENTRIES:
            now = time.monotonic()
            self._plans = {k: v for k, v in self._plans.items() if v[0] > now}
            if len(self._plans) >= self.MAX_ENTRIES:
                self._plans.clear()
        self._plans[(plan.agent_id, plan.caller_key)] = (time.monotonic() + self._ttl, plan)

    def forget(self, agent_id: uuid.UUID | None = None) -> None:
        """Drop the plans for one agent (its card, settings or rules changed), or all."""
        if agent_id is None:
            self._plans.clear()
            return
        for key in [key for key in self._plans if key[0] == agent_id]:
            del self._plans[key]


async def plan_call(
    database: Database,
    limiter: RateLimiter,
    *,
    agent_id: uuid.UUID,
    principal: Principal,
    cache: PlanCache | None = None,
) -> CallPlan:
    """Check that ``principal`` may call the agent now; raise the matching problem if not.

    404 for an unknown (or hidden) agent, 403 ``call_not_permitted`` / ``call_denied`` /
    ``approval_required`` (the request is filed for the owner), 409 ``no_endpoint``,
    502 ``agent_paused``, 429 over the caller's hourly limit.
    """
    plan = cache.get(agent_id, principal.rate_limit_key) if cache is not None else None
    if plan is None:
        plan = await _load_plan(database, agent_id=agent_id, principal=principal)
        if cache is not None:
            cache.put(plan)
    if plan.decision.max_calls_per_hour is not None:
        await limiter.hit(
            parse(f"{plan.decision.max_calls_per_hour}/hour"),
            f"agent-calls:{agent_id}",
            principal.rate_limit_key,
        )
    return plan


async def _load_plan(database: Database, *, agent_id: uuid.UUID, principal: Principal) -> CallPlan:
    async with database.read_sessions() as session:
        agent = await session.get(Agent, agent_id)
        if agent is None or agent.status == AgentStatus.BANNED.value:
            raise AgentNotFoundError("No such agent.")
        caller = await permissions.caller_of(session, principal)
        decision = await permissions.decide_call(session, agent, caller)
        record = await session.get(AgentCardRecord, agent_id)
        session.expunge_all()

    if decision.verdict is Verdict.APPROVAL_REQUIRED:

        async def file(write: AsyncSession) -> uuid.UUID:
            target = await write.get(Agent, agent_id)
            assert target is not None  # noqa: S101 - read just above; agents are not deleted
            filed = await permissions.file_access_request(
                write, target=target, caller=caller, now=utcnow()
            )
            return filed.id

        request_id = await in_transaction(database, file)
        raise HubError(
            "This agent takes calls only from callers its owner approved. Your request is "
            "filed; the owner has been notified.",
            status=403,
            code="approval_required",
            extra={"access_request_id": str(request_id)},
        )
    if not decision.allowed:
        raise _refusal(agent, decision)
    if not agent.endpoint_url:
        raise HubError(
            "This agent has no A2A endpoint; hire it with a contract instead.",
            status=409,
            code="no_endpoint",
        )
    if agent.status == AgentStatus.PAUSED.value:
        raise HubError(
            "This agent is paused by its owner and takes no calls.",
            status=502,
            code="agent_paused",
        )
    return CallPlan(
        agent_id=agent.id,
        agent_name=agent.name,
        endpoint_url=agent.endpoint_url,
        caller=caller,
        caller_key=principal.rate_limit_key,
        decision=decision,
        upstream=upstream_of(record),
    )


# ---- storing cards ----


async def store_card(
    session: AsyncSession, *, agent: Agent, fetched: FetchedCard, now: datetime
) -> tuple[AgentCardRecord, bool]:
    """Save a freshly fetched card, mark the agent reachable, and add the capabilities its
    skills declare. Returns the record and whether the agent's searchable fields changed."""
    record = await session.get(AgentCardRecord, agent.id)
    if record is None:
        record = AgentCardRecord(agent_id=agent.id, consecutive_failures=0, unavailable=False)
        session.add(record)
    was_unavailable = record.unavailable
    record.card = fetched.raw
    record.card_url = fetched.card_url
    record.rpc_url = fetched.rpc_url
    record.protocol_version = fetched.protocol_version
    record.fetched_at = now
    record.checked_at = now
    record.consecutive_failures = 0
    record.last_error = None
    record.unavailable = False
    record.unavailable_since = None
    changed = False
    capabilities = merge_capabilities(agent.capabilities, derived_capabilities(fetched.card))
    if capabilities != agent.capabilities:
        agent.capabilities = capabilities
        changed = True
    if not agent.description.strip() and fetched.card.description.strip():
        agent.description = fetched.card.description.strip()[:4000]
        changed = True
    if changed:
        agent.updated_at = now
    if was_unavailable:
        await publish(
            session,
            [user_recipient(agent.owner_id)],
            AGENT_AVAILABLE_EVENT,
            {"agent_id": str(agent.id), "agent_name": agent.name},
        )
    await session.flush()
    return record, changed


async def record_card_failure(
    session: AsyncSession,
    *,
    agent: Agent,
    error: str,
    failures_before_unavailable: int,
    now: datetime,
) -> AgentCardRecord:
    """Count one failed check; at the threshold mark the agent unavailable and tell its owner
    (once, when it crosses)."""
    record = await session.get(AgentCardRecord, agent.id)
    if record is None:
        record = AgentCardRecord(agent_id=agent.id, consecutive_failures=0, unavailable=False)
        session.add(record)
    record.consecutive_failures += 1
    record.checked_at = now
    record.last_error = error[:500]
    if record.consecutive_failures >= failures_before_unavailable and not record.unavailable:
        record.unavailable = True
        record.unavailable_since = now
        await publish(
            session,
            [user_recipient(agent.owner_id)],
            AGENT_UNAVAILABLE_EVENT,
            {
                "agent_id": str(agent.id),
                "agent_name": agent.name,
                "failures": record.consecutive_failures,
                "last_error": record.last_error,
            },
        )
    await session.flush()
    return record


async def agents_due_for_check(
    session: AsyncSession, *, checked_before: datetime
) -> list[uuid.UUID]:
    """Agents with an endpoint whose card was not checked since ``checked_before``."""
    rows = await session.scalars(
        select(Agent.id)
        .outerjoin(AgentCardRecord, AgentCardRecord.agent_id == Agent.id)
        .where(
            Agent.endpoint_url.is_not(None),
            Agent.status != AgentStatus.BANNED.value,
            or_(AgentCardRecord.checked_at.is_(None), AgentCardRecord.checked_at < checked_before),
        )
    )
    return list(rows)
