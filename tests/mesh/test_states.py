"""The contract state machine, pair by pair: what each action leads to, and the stable
code of every refusal. The expected tables are written out here from the issue's lifecycle,
not read back from ``states.TRANSITIONS``, so a change to the machine shows up as a failure."""

from __future__ import annotations

import itertools

import pytest

from hermes_hub.errors import ConflictError, HubError
from hermes_hub.mesh.states import (
    TERMINAL,
    ContractAction,
    ContractStatus,
    InvalidTransitionError,
    is_allowed,
    next_status,
    refusal_code,
)

S = ContractStatus
A = ContractAction

ALLOWED: dict[tuple[ContractStatus, ContractAction], ContractStatus] = {
    # Auction: bidding -> awarded -> delivered -> settled.
    (S.BIDDING, A.BID): S.BIDDING,
    (S.BIDDING, A.AWARD): S.AWARDED,
    (S.BIDDING, A.CANCEL): S.CANCELLED,
    (S.BIDDING, A.EXPIRE): S.EXPIRED,
    # Claim mode: open -> claimed -> delivered.
    (S.OPEN, A.CLAIM): S.CLAIMED,
    (S.OPEN, A.CANCEL): S.CANCELLED,
    (S.OPEN, A.EXPIRE): S.EXPIRED,
    (S.AWARDED, A.DELIVER): S.DELIVERED,
    (S.AWARDED, A.FAIL): S.FAILED,
    (S.CLAIMED, A.DELIVER): S.DELIVERED,
    (S.CLAIMED, A.FAIL): S.FAILED,
    (S.DELIVERED, A.SETTLE): S.SETTLED,
    (S.DELIVERED, A.DISPUTE): S.DISPUTED,
    (S.DISPUTED, A.RESPOND): S.DISPUTED,
    (S.DISPUTED, A.RESOLVE): S.RESOLVED,
}

# The code a refused action gets in any status not listed in SPECIAL_REFUSALS.
DEFAULT_REFUSAL: dict[ContractAction, str] = {
    A.BID: "bidding_closed",
    A.AWARD: "not_biddable",
    A.CLAIM: "not_claimable",
    A.CANCEL: "not_cancellable",
    A.EXPIRE: "not_expirable",
    A.DELIVER: "not_deliverable",
    A.FAIL: "not_failable",
    A.SETTLE: "not_settleable",
    A.DISPUTE: "not_settleable",
    A.RESPOND: "not_disputed",
    A.RESOLVE: "not_disputed",
}
SPECIAL_REFUSALS: dict[tuple[ContractStatus, ContractAction], str] = {
    (S.CLAIMED, A.CLAIM): "already_claimed",
    (S.AWARDED, A.AWARD): "already_awarded",
    (S.CLAIMED, A.AWARD): "already_awarded",
    (S.SETTLED, A.SETTLE): "already_settled",
    (S.DISPUTED, A.SETTLE): "already_settled",
    (S.RESOLVED, A.SETTLE): "already_settled",
    # A rejection (score < 0.6) of a contract already settled is a second settlement too.
    (S.SETTLED, A.DISPUTE): "already_settled",
    (S.DISPUTED, A.DISPUTE): "already_settled",
    (S.RESOLVED, A.DISPUTE): "already_settled",
}

TERMINAL_STATUSES = {S.SETTLED, S.RESOLVED, S.CANCELLED, S.EXPIRED, S.FAILED}
ALL_PAIRS = list(itertools.product(ContractStatus, ContractAction))
REFUSED_PAIRS = [pair for pair in ALL_PAIRS if pair not in ALLOWED]


def _id(pair: tuple[ContractStatus, ContractAction]) -> str:
    return f"{pair[0].value}-{pair[1].value}"


def test_the_tables_cover_every_status_and_action():
    assert {status for status, _ in ALLOWED} | TERMINAL_STATUSES == set(ContractStatus)
    assert {action for _, action in ALLOWED} == set(ContractAction)
    assert set(DEFAULT_REFUSAL) == set(ContractAction)
    assert len(ALL_PAIRS) == len(ALLOWED) + len(REFUSED_PAIRS) == 11 * 11


@pytest.mark.parametrize("pair", list(ALLOWED), ids=_id)
def test_allowed_actions_lead_to_the_documented_status(pair):
    status, action = pair
    assert is_allowed(status, action)
    assert next_status(status, action) is ALLOWED[pair]


@pytest.mark.parametrize("pair", REFUSED_PAIRS, ids=_id)
def test_refused_actions_raise_a_409_with_a_stable_code(pair):
    status, action = pair
    expected = SPECIAL_REFUSALS.get(pair, DEFAULT_REFUSAL[action])
    assert not is_allowed(status, action)
    assert refusal_code(status, action) == expected
    with pytest.raises(InvalidTransitionError) as caught:
        next_status(status, action)
    error = caught.value
    assert isinstance(error, ConflictError)
    assert isinstance(error, HubError)
    assert error.status == 409
    assert error.code == expected
    assert error.extra == {"contract_status": status.value, "action": action.value}
    assert status.value in error.detail
    assert action.value in error.detail


@pytest.mark.parametrize(
    ("status", "action", "code"),
    [
        (S.AWARDED, A.BID, "bidding_closed"),
        (S.EXPIRED, A.BID, "bidding_closed"),
        (S.CANCELLED, A.BID, "bidding_closed"),
        (S.CLAIMED, A.CLAIM, "already_claimed"),
        (S.SETTLED, A.SETTLE, "already_settled"),
        (S.AWARDED, A.AWARD, "already_awarded"),
        (S.CLAIMED, A.AWARD, "already_awarded"),
        (S.AWARDED, A.CANCEL, "not_cancellable"),
        (S.BIDDING, A.DELIVER, "not_deliverable"),
        (S.SETTLED, A.RESOLVE, "not_disputed"),
    ],
)
def test_the_codes_clients_rely_on(status, action, code):
    with pytest.raises(InvalidTransitionError) as caught:
        next_status(status, action)
    assert caught.value.code == code


@pytest.mark.parametrize("status", sorted(TERMINAL_STATUSES), ids=str)
def test_terminal_statuses_allow_nothing(status):
    assert status in TERMINAL
    for action in ContractAction:
        assert not is_allowed(status, action)
        with pytest.raises(InvalidTransitionError):
            next_status(status, action)


def test_terminal_set_is_exactly_the_dead_ends():
    assert set(TERMINAL) == TERMINAL_STATUSES
    live = set(ContractStatus) - TERMINAL_STATUSES
    for status in live:
        assert any(is_allowed(status, action) for action in ContractAction), status


def test_every_status_is_reachable_from_a_start():
    reached = {S.BIDDING, S.OPEN}
    frontier = list(reached)
    while frontier:
        status = frontier.pop()
        for action in ContractAction:
            if is_allowed(status, action):
                target = next_status(status, action)
                if target not in reached:
                    reached.add(target)
                    frontier.append(target)
    assert reached == set(ContractStatus)
