"""The call ACL as a pure decision: one test per rule, and the order between them."""

import uuid

from hypothesis import given
from hypothesis import strategies as st

from hermes_hub.identity.acl import Caller, Rule, Target, Verdict, decide

OWNER = uuid.uuid4()
ORG = uuid.uuid4()
OTHER_ORG = uuid.uuid4()


def target(**changes):
    fields = {
        "agent_id": uuid.uuid4(),
        "owner_id": OWNER,
        "organization_id": ORG,
        "is_public": False,
        "requires_approval": False,
        "max_calls_per_hour": 100,
    }
    fields.update(changes)
    return Target(**fields)


def agent_caller(orgs=()):
    return Caller(user_id=uuid.uuid4(), agent_id=uuid.uuid4(), organization_ids=frozenset(orgs))


def user_caller(orgs=()):
    return Caller(user_id=uuid.uuid4(), organization_ids=frozenset(orgs))


def rule(subject_type, subject_id, effect="allow", limit=None, org_level=False):
    return Rule(subject_type, subject_id, effect, limit, org_level=org_level)


def test_default_is_deny():
    decision = decide(target(), agent_caller(), [])
    assert decision.verdict is Verdict.DENIED
    assert decision.reason == "not_permitted"


def test_public_agents_take_calls_from_anyone_at_their_own_limit():
    decision = decide(target(is_public=True), user_caller(), [])
    assert decision.allowed
    assert (decision.reason, decision.max_calls_per_hour) == ("public", 100)


def test_agent_level_allow_with_its_own_limit():
    caller = agent_caller()
    decision = decide(target(), caller, [rule("agent", caller.agent_id, limit=7)])
    assert decision.allowed
    assert (decision.reason, decision.max_calls_per_hour) == ("agent_rule", 7)


def test_an_allow_without_a_limit_falls_back_to_the_agents_limit():
    caller = agent_caller()
    assert decide(target(), caller, [rule("agent", caller.agent_id)]).max_calls_per_hour == 100


def test_agent_level_deny_beats_public_same_organization_and_org_allow():
    caller = agent_caller(orgs=[ORG])
    rules = [
        rule("agent", caller.agent_id, "deny"),
        rule("agent", caller.agent_id, org_level=True),
    ]
    decision = decide(target(is_public=True), caller, rules)
    assert decision.verdict is Verdict.DENIED
    assert decision.reason == "denied_by_rule"


def test_a_user_rule_covers_the_users_agents():
    caller = agent_caller()
    allowed = decide(target(), caller, [rule("user", caller.user_id)])
    assert (allowed.allowed, allowed.reason) == (True, "user_rule")
    denied = decide(target(is_public=True), caller, [rule("user", caller.user_id, "deny")])
    assert denied.verdict is Verdict.DENIED


def test_the_agent_rule_is_more_specific_than_its_owners_rule():
    caller = agent_caller()
    rules = [rule("user", caller.user_id, "deny"), rule("agent", caller.agent_id)]
    assert decide(target(), caller, rules).allowed


def test_an_organization_named_on_the_agent_allows_its_members_and_agents():
    caller = user_caller(orgs=[OTHER_ORG])
    decision = decide(target(), caller, [rule("organization", OTHER_ORG, limit=3)])
    assert (decision.allowed, decision.reason, decision.max_calls_per_hour) == (
        True,
        "organization_rule",
        3,
    )


def test_org_level_allow_covers_every_agent_of_the_organization():
    caller = agent_caller(orgs=[OTHER_ORG])
    decision = decide(target(), caller, [rule("organization", OTHER_ORG, org_level=True)])
    assert (decision.allowed, decision.reason) == (True, "organization_allow")


def test_same_organization_calls_are_allowed():
    decision = decide(target(), agent_caller(orgs=[ORG]), [])
    assert (decision.allowed, decision.reason) == (True, "same_organization")


def test_owner_self_and_sibling_agents_are_always_allowed_even_against_a_deny():
    t = target(requires_approval=True)
    owner = Caller(user_id=OWNER)
    sibling = Caller(user_id=OWNER, agent_id=uuid.uuid4())
    itself = Caller(user_id=uuid.uuid4(), agent_id=t.agent_id)
    deny_all = [rule("user", OWNER, "deny"), rule("agent", sibling.agent_id, "deny")]
    assert decide(t, owner, deny_all).reason == "owner"
    assert decide(t, sibling, deny_all).reason == "same_owner"
    assert decide(t, itself, deny_all).reason == "self"
    for caller in (owner, sibling, itself):
        assert decide(t, caller, deny_all).max_calls_per_hour is None


def test_admins_may_call_anything():
    admin = Caller(user_id=uuid.uuid4(), is_admin=True)
    assert decide(target(requires_approval=True), admin, []).reason == "admin"


def test_requires_approval_asks_unknown_callers_even_on_a_public_agent():
    decision = decide(target(is_public=True, requires_approval=True), agent_caller(), [])
    assert decision.verdict is Verdict.APPROVAL_REQUIRED


def test_approved_and_same_organization_callers_skip_approval():
    t = target(requires_approval=True)
    caller = agent_caller()
    assert decide(t, caller, [rule("agent", caller.agent_id)]).allowed
    assert decide(t, agent_caller(orgs=[ORG]), []).allowed


def test_rules_for_someone_else_do_not_apply():
    caller = agent_caller()
    rules = [rule("agent", uuid.uuid4()), rule("user", uuid.uuid4())]
    assert decide(target(), caller, rules).verdict is Verdict.DENIED


@given(
    is_public=st.booleans(),
    requires_approval=st.booleans(),
    same_org=st.booleans(),
    allow_kinds=st.sets(st.sampled_from(["agent", "user", "organization", "org_level"])),
)
def test_an_agent_level_deny_always_wins_for_strangers(
    is_public, requires_approval, same_org, allow_kinds
):
    t = target(is_public=is_public, requires_approval=requires_approval)
    caller = agent_caller(orgs=[ORG] if same_org else [OTHER_ORG])
    ids = {"agent": caller.agent_id, "user": caller.user_id, "organization": OTHER_ORG}
    rules = [rule("agent", caller.agent_id, "deny")]
    for kind in allow_kinds:
        if kind == "org_level":
            rules.append(rule("user", caller.user_id, org_level=True))
        elif kind != "agent":
            rules.append(rule(kind, ids[kind]))
    assert decide(t, caller, rules).verdict is Verdict.DENIED
