"""Base classes for request and response bodies shared by every domain."""

from __future__ import annotations

import math
from decimal import Decimal
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, model_validator

_MAX_NESTING = 32


def not_bool(value: Any) -> Any:
    """A BeforeValidator for numbers: JSON true is not a number, although Python's bool is an
    int."""
    if isinstance(value, bool):
        raise ValueError("expected a number, not a boolean")
    return value


def _check_portable(value: Any, depth: int = 0) -> None:
    # PostgreSQL refuses NUL characters in text and JSON, and non-finite numbers in JSON;
    # SQLite would store them. Refusing them up front keeps both backends alike and turns
    # what would be a database error into a 422.
    if depth > _MAX_NESTING:
        raise ValueError(f"values may be nested at most {_MAX_NESTING} levels deep")
    if isinstance(value, str):
        if "\x00" in value:
            raise ValueError("text must not contain NUL characters")
    elif isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError("numbers must be finite (no NaN or Infinity)")
    elif isinstance(value, dict):
        for key, item in value.items():
            _check_portable(key, depth + 1)
            _check_portable(item, depth + 1)
    elif isinstance(value, list | tuple):
        for item in value:
            _check_portable(item, depth + 1)


class InputModel(BaseModel):
    """A request body: unknown fields are refused, and so is text the database cannot store."""

    model_config = ConfigDict(extra="forbid", str_max_length=10_000)

    @model_validator(mode="before")
    @classmethod
    def _portable_values(cls, data: Any) -> Any:
        _check_portable(data)
        return data


class OutputModel(BaseModel):
    model_config = ConfigDict(from_attributes=True)


def _plain_numbers(value: Any) -> Any:
    # Exact-number routes (kit.exact_json) parse every JSON fraction as a Decimal; free-form
    # JSON that is stored as given goes back to ordinary numbers so it can be serialized.
    if isinstance(value, Decimal):
        if value == value.to_integral_value() and "." not in str(value):
            return int(value)
        number = float(value)
        if not math.isfinite(number):
            raise ValueError("numbers must fit a 64-bit float")
        return number
    if isinstance(value, dict):
        return {key: _plain_numbers(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_plain_numbers(item) for item in value]
    return value


# Any JSON value a client sends to be stored and handed back as it came.
FreeJSON = Annotated[Any, BeforeValidator(_plain_numbers)]
JSONObject = Annotated[dict[str, Any], BeforeValidator(_plain_numbers)]
