"""How a held reward is divided when a contract's result is validated. Pure functions.

Release by validation score (the seeds' rule):

    score >= 0.95        -> 100% of the hold is released
    0.80 <= score < 0.95 ->  90%
    0.60 <= score < 0.80 ->  70%
    score < 0.60         ->   0%, and the contract goes to dispute

Of the released amount the platform takes its fee and, when the agent belongs to an
organization, the organization takes its share; the agent gets the rest.

Rounding never loses a unit, and never favours the hub:
- released = floor(held * percent / 100); the payer gets back held - released, so any
  fraction of a unit cut off the release goes back to the payer;
- fee = floor(released * fee_bp / 10000) and org share = floor(released * org_bp / 10000);
  the agent gets released - fee - org share, so the fractions cut off the fee and the
  share go to the agent.
"""

from __future__ import annotations

from dataclasses import dataclass

from hermes_hub.kit.money import BASIS_POINTS

FULL_RELEASE_SCORE = 0.95
HIGH_RELEASE_SCORE = 0.80
PARTIAL_RELEASE_SCORE = 0.60
MAX_PLATFORM_FEE_BP = 2_000
MAX_ORG_SHARE_BP = 1_000


def release_percent(score: float) -> int:
    """The share of the hold (in percent) that a validation score releases."""
    if not 0.0 <= score <= 1.0:
        raise ValueError("a validation score lies between 0 and 1")
    if score >= FULL_RELEASE_SCORE:
        return 100
    if score >= HIGH_RELEASE_SCORE:
        return 90
    if score >= PARTIAL_RELEASE_SCORE:
        return 70
    return 0


@dataclass(frozen=True)
class Settlement:
    held: int
    released: int
    refunded: int
    agent_share: int
    platform_fee: int
    org_share: int

    def __post_init__(self) -> None:
        if self.released + self.refunded != self.held:
            raise AssertionError("released + refunded must equal the hold")
        if self.agent_share + self.platform_fee + self.org_share != self.released:
            raise AssertionError("the shares must add up to the released amount")
        if min(self.released, self.refunded, self.agent_share, self.platform_fee) < 0:
            raise AssertionError("no share may be negative")
        if self.org_share < 0:
            raise AssertionError("no share may be negative")


def split_release(
    *, held: int, released: int, platform_fee_bp: int, org_share_bp: int
) -> Settlement:
    """Divide ``released`` of a ``held`` amount between agent, platform and organization."""
    if held <= 0:
        raise ValueError("a hold is positive")
    if not 0 <= released <= held:
        raise ValueError("the released amount lies between 0 and the hold")
    if not 0 <= platform_fee_bp <= MAX_PLATFORM_FEE_BP:
        raise ValueError("the platform fee lies between 0% and 20%")
    if not 0 <= org_share_bp <= MAX_ORG_SHARE_BP:
        raise ValueError("the organization share lies between 0% and 10%")
    fee = released * platform_fee_bp // BASIS_POINTS
    org = released * org_share_bp // BASIS_POINTS
    return Settlement(
        held=held,
        released=released,
        refunded=held - released,
        agent_share=released - fee - org,
        platform_fee=fee,
        org_share=org,
    )


def settle_by_score(
    *, held: int, score: float, platform_fee_bp: int, org_share_bp: int
) -> Settlement:
    """The settlement a validation score gives (``org_share_bp`` 0 when the agent has no org)."""
    released = held * release_percent(score) // 100
    return split_release(
        held=held, released=released, platform_fee_bp=platform_fee_bp, org_share_bp=org_share_bp
    )
