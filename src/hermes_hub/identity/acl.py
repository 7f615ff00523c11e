"""Who may call an agent: a pure decision over the target, the caller and the matching rules.

The order, most specific first (seed 001's ``check_agent_acl``, extended):

1. the target's owner, the target itself, a sibling agent of the same owner, and admins;
2. an agent-level rule naming the calling agent, then one naming the calling user (for an
   agent caller: its owner, on whose behalf it acts); a deny here is final;
3. an agent-level rule naming one of the caller's organizations, then an org-level allow
   (the target's organization allows the caller, a user of it, or one of its organizations);
4. the same organization as the target;
5. a public target that does not require approval;
6. a target that requires approval: ``approval_required``, and the owner is asked;
7. otherwise denied.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum

from hermes_hub.identity.models import PermissionEffect, PermissionSubject


class Verdict(StrEnum):
    ALLOWED = "allowed"
    DENIED = "denied"
    APPROVAL_REQUIRED = "approval_required"


@dataclass(frozen=True)
class Target:
    agent_id: uuid.UUID
    owner_id: uuid.UUID
    organization_id: uuid.UUID | None
    is_public: bool
    requires_approval: bool
    max_calls_per_hour: int | None


@dataclass(frozen=True)
class Caller:
    """An agent (``agent_id`` set; ``user_id`` is its owner) or a user acting directly."""

    user_id: uuid.UUID
    agent_id: uuid.UUID | None = None
    organization_ids: frozenset[uuid.UUID] = frozenset()
    is_admin: bool = False

    @property
    def subject(self) -> tuple[str, uuid.UUID]:
        """The identity an access request is filed under."""
        if self.agent_id is not None:
            return PermissionSubject.AGENT.value, self.agent_id
        return PermissionSubject.USER.value, self.user_id


@dataclass(frozen=True)
class Rule:
    subject_type: str
    subject_id: uuid.UUID
    effect: str
    max_calls_per_hour: int | None = None
    # True for a rule on the target's organization (every agent of it), False for one on the
    # target agent itself.
    org_level: bool = False


@dataclass(frozen=True)
class Decision:
    verdict: Verdict
    reason: str
    # The per-caller limit that applies; None for no limit.
    max_calls_per_hour: int | None = None

    @property
    def allowed(self) -> bool:
        return self.verdict is Verdict.ALLOWED


def _matches(rule: Rule, subject_type: PermissionSubject, ids: Iterable[uuid.UUID]) -> bool:
    return rule.subject_type == subject_type.value and rule.subject_id in set(ids)


def decide(target: Target, caller: Caller, rules: Iterable[Rule]) -> Decision:
    """Whether ``caller`` may call ``target``, and under which per-caller limit."""
    if caller.is_admin:
        return Decision(Verdict.ALLOWED, "admin")
    if caller.agent_id == target.agent_id:
        return Decision(Verdict.ALLOWED, "self")
    if caller.user_id == target.owner_id:
        return Decision(Verdict.ALLOWED, "same_owner" if caller.agent_id else "owner")

    agent_rules = [rule for rule in rules if not rule.org_level]
    org_rules = [rule for rule in rules if rule.org_level]
    default_limit = target.max_calls_per_hour

    def by_rule(rule: Rule, reason: str) -> Decision:
        if rule.effect == PermissionEffect.DENY.value:
            return Decision(Verdict.DENIED, "denied_by_rule")
        return Decision(Verdict.ALLOWED, reason, rule.max_calls_per_hour or default_limit)

    specific: list[tuple[PermissionSubject, list[uuid.UUID], str]] = [
        (PermissionSubject.AGENT, [caller.agent_id] if caller.agent_id else [], "agent_rule"),
        (PermissionSubject.USER, [caller.user_id], "user_rule"),
        (PermissionSubject.ORGANIZATION, list(caller.organization_ids), "organization_rule"),
    ]
    for subject_type, ids, reason in specific:
        found = [rule for rule in agent_rules if _matches(rule, subject_type, ids)]
        denying = [rule for rule in found if rule.effect == PermissionEffect.DENY.value]
        if denying:
            return by_rule(denying[0], reason)
        if found:
            return by_rule(found[0], reason)
    for subject_type, ids, _ in specific:
        found = [rule for rule in org_rules if _matches(rule, subject_type, ids)]
        if found:
            return by_rule(found[0], "organization_allow")

    if target.organization_id is not None and target.organization_id in caller.organization_ids:
        return Decision(Verdict.ALLOWED, "same_organization", default_limit)
    if target.requires_approval:
        return Decision(Verdict.APPROVAL_REQUIRED, "approval_required")
    if target.is_public:
        return Decision(Verdict.ALLOWED, "public", default_limit)
    return Decision(Verdict.DENIED, "not_permitted")
