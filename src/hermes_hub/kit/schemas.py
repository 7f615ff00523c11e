"""Base classes for request and response bodies shared by every domain."""

from __future__ import annotations

import math
from typing import Any

from pydantic import BaseModel, ConfigDict, model_validator

_MAX_NESTING = 32


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
