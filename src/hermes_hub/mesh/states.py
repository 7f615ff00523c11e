"""The contract lifecycle as a pure state machine.

Auction: ``bidding -> awarded -> delivered -> settled``; claim mode (Nervix):
``open -> claimed -> delivered -> ...``. Side exits: ``cancelled`` (requester, before
anyone is chosen), ``expired`` (no eligible bid or claim in time), ``failed`` (no delivery
by the deadline), ``disputed -> resolved`` (a score under 0.6, ruled by an admin).
"""

from __future__ import annotations

from enum import StrEnum

from hermes_hub.errors import ConflictError


class ContractStatus(StrEnum):
    BIDDING = "bidding"
    OPEN = "open"
    AWARDED = "awarded"
    CLAIMED = "claimed"
    DELIVERED = "delivered"
    SETTLED = "settled"
    DISPUTED = "disputed"
    RESOLVED = "resolved"
    CANCELLED = "cancelled"
    EXPIRED = "expired"
    FAILED = "failed"


class ContractAction(StrEnum):
    BID = "bid"
    AWARD = "award"
    CLAIM = "claim"
    CANCEL = "cancel"
    EXPIRE = "expire"
    DELIVER = "deliver"
    FAIL = "fail"
    SETTLE = "settle"
    DISPUTE = "dispute"
    RESPOND = "respond"
    RESOLVE = "resolve"


class ContractMode(StrEnum):
    AUCTION = "auction"
    CLAIM = "claim"


S = ContractStatus
A = ContractAction

# (status, action) -> next status. An action that leaves the status unchanged (a bid, a
# dispute response) still needs an entry: it says the action is allowed in that status.
TRANSITIONS: dict[tuple[ContractStatus, ContractAction], ContractStatus] = {
    (S.BIDDING, A.BID): S.BIDDING,
    (S.BIDDING, A.AWARD): S.AWARDED,
    (S.BIDDING, A.CANCEL): S.CANCELLED,
    (S.BIDDING, A.EXPIRE): S.EXPIRED,
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

TERMINAL = frozenset({S.SETTLED, S.RESOLVED, S.CANCELLED, S.EXPIRED, S.FAILED})

# A stable code per refused action, so clients can tell "too late to bid" from "already
# settled" without parsing the sentence.
_REFUSAL_CODES: dict[ContractAction, str] = {
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


class InvalidTransitionError(ConflictError):
    def __init__(self, status: ContractStatus, action: ContractAction, code: str) -> None:
        super().__init__(
            f"A contract in status '{status.value}' cannot take the action '{action.value}'.",
            code=code,
            extra={"contract_status": status.value, "action": action.value},
        )


def refusal_code(status: ContractStatus, action: ContractAction) -> str:
    if action is A.CLAIM and status is S.CLAIMED:
        return "already_claimed"
    if action in (A.SETTLE, A.DISPUTE) and status in (S.SETTLED, S.DISPUTED, S.RESOLVED):
        return "already_settled"
    if action is A.AWARD and status in (S.AWARDED, S.CLAIMED):
        return "already_awarded"
    return _REFUSAL_CODES[action]


def next_status(status: ContractStatus, action: ContractAction) -> ContractStatus:
    """The status after ``action``; raises a 409 with a stable code if it is not allowed."""
    target = TRANSITIONS.get((status, action))
    if target is None:
        raise InvalidTransitionError(status, action, refusal_code(status, action))
    return target


def is_allowed(status: ContractStatus, action: ContractAction) -> bool:
    return (status, action) in TRANSITIONS
