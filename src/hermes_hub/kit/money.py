"""Credits on the wire, integer minor units in storage (1 credit = 100 units)."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

UNITS_PER_CREDIT = 100
DEFAULT_CURRENCY = "CRD"


def credits_to_units(amount: Decimal) -> int:
    """Convert a credit amount with at most two decimals to minor units; reject finer amounts."""
    try:
        scaled = amount * UNITS_PER_CREDIT
        if scaled != scaled.to_integral_value():
            raise ValueError("amounts have at most 2 decimal places")
    except InvalidOperation as exc:
        raise ValueError("not a finite decimal amount") from exc
    return int(scaled)


def units_to_credits(units: int) -> Decimal:
    return (Decimal(units) / UNITS_PER_CREDIT).quantize(Decimal("0.01"))
