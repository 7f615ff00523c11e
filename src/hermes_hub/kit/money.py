"""Credits on the wire, integer minor units in storage (1 credit = 100 units).

Request bodies accept credits as a JSON number or a numeric string with at most two decimals;
anything finer is refused rather than rounded. Responses carry credits as JSON numbers and,
beside them, the exact integer amount in units.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Annotated, Any

from pydantic import BeforeValidator, PlainSerializer, WithJsonSchema

UNITS_PER_CREDIT = 100
DEFAULT_CURRENCY = "CRD"
# One transfer moves at most a trillion credits: far above any real use, and well under
# 2**53 units, so every amount is also exact as a JavaScript number.
MAX_TRANSFER_UNITS = 10**12 * UNITS_PER_CREDIT
BASIS_POINTS = 10_000


def credits_to_units(amount: Decimal) -> int:
    """Convert a credit amount with at most two decimals to minor units; reject finer amounts."""
    try:
        scaled = amount * UNITS_PER_CREDIT
        if not scaled.is_finite() or scaled != scaled.to_integral_value():
            raise ValueError("amounts have at most 2 decimal places")
    except InvalidOperation as exc:
        raise ValueError("not a finite decimal amount") from exc
    return int(scaled)


def units_to_credits(units: int) -> Decimal:
    return (Decimal(units) / UNITS_PER_CREDIT).quantize(Decimal("0.01"))


def percent_to_basis_points(percent: Decimal) -> int:
    return int((percent * 100).to_integral_value())


def _parse_positive_credits(value: Any) -> int:
    # bool is an int in Python; "true" is not an amount.
    if isinstance(value, bool) or not isinstance(value, int | float | str | Decimal):
        raise ValueError("amount must be a number of credits, e.g. 5 or 4.25")
    try:
        # Money routes hand over JSON numbers as exact Decimals (kit.exact_json); for a float
        # from elsewhere, str() keeps its shortest form: 4.25 stays 4.25.
        amount = value if isinstance(value, Decimal) else Decimal(str(value).strip())
    except InvalidOperation as exc:
        raise ValueError("amount must be a number of credits, e.g. 5 or 4.25") from exc
    if not amount.is_finite():
        raise ValueError("amount must be a finite number")
    units = credits_to_units(amount)
    if units <= 0:
        raise ValueError("amount must be greater than zero")
    if units > MAX_TRANSFER_UNITS:
        raise ValueError(f"amount must be at most {MAX_TRANSFER_UNITS // UNITS_PER_CREDIT} credits")
    return units


def _serialize_units_as_credits(units: int) -> float:
    return float(units_to_credits(units))


_CREDITS_SCHEMA: dict[str, Any] = {
    "type": "number",
    "exclusiveMinimum": 0,
    "multipleOf": 0.01,
    "description": "Credits, at most two decimals (1 credit = 100 units).",
}

# An amount in a request: parsed from credits, held as integer units.
CreditAmount = Annotated[
    int,
    BeforeValidator(_parse_positive_credits),
    WithJsonSchema(_CREDITS_SCHEMA, mode="validation"),
    PlainSerializer(_serialize_units_as_credits, return_type=float),
]

# An amount in a response: integer units in Python, credits as a JSON number on the wire.
Credits = Annotated[
    int,
    PlainSerializer(_serialize_units_as_credits, return_type=float),
    WithJsonSchema({"type": "number", "description": "Credits (1 credit = 100 units)."}),
]
