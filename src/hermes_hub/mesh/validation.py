"""Automatic validation of a delivery against the contract's ``output_schema``.

The schema is checked when the contract is created (a broken schema is a 422 then, not a
surprise at delivery). A delivery that satisfies it scores 1.0; one that does not scores
0.0 and the first errors are kept for both parties to read. Without a schema there is no
automatic check and the automatic score is 1.0 (the requester's own settlement decides).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from jsonschema import Draft202012Validator, SchemaError
from jsonschema.validators import validator_for
from referencing.exceptions import Unresolvable

from hermes_hub.errors import HubError

MAX_REPORTED_ERRORS = 20


class InvalidOutputSchemaError(HubError):
    status = 422
    code = "invalid_output_schema"


def check_schema(schema: dict[str, Any]) -> None:
    """Refuse a schema that is not valid JSON Schema (the draft named by ``$schema``,
    2020-12 by default)."""
    remote = _first_remote_ref(schema)
    if remote is not None:
        # The hub never fetches schemas from the network: only local "#..." references.
        raise InvalidOutputSchemaError(
            f"output_schema may only use local references ('#/...'), not {remote[:200]!r}."
        )
    cls = validator_for(schema, default=Draft202012Validator)
    try:
        cls.check_schema(schema)
    except SchemaError as exc:
        path = "/".join(str(part) for part in exc.absolute_path) or "(root)"
        raise InvalidOutputSchemaError(
            f"output_schema is not a valid JSON Schema at {path}: {exc.message}"
        ) from exc


def _first_remote_ref(node: Any) -> str | None:
    if isinstance(node, dict):
        for key, value in node.items():
            is_ref = key in ("$ref", "$dynamicRef") and isinstance(value, str)
            if is_ref and not value.startswith("#"):
                return str(value)
            found = _first_remote_ref(value)
            if found is not None:
                return found
    elif isinstance(node, list):
        for item in node:
            found = _first_remote_ref(item)
            if found is not None:
                return found
    return None


@dataclass(frozen=True)
class ValidationResult:
    score: float
    errors: list[str]


def validate_delivery(schema: dict[str, Any] | None, data: Any) -> ValidationResult:
    if schema is None:
        return ValidationResult(score=1.0, errors=[])
    cls = validator_for(schema, default=Draft202012Validator)
    validator = cls(schema)
    errors: list[str] = []
    try:
        for error in validator.iter_errors(data):
            path = "/".join(str(part) for part in error.absolute_path) or "(root)"
            errors.append(f"{path}: {error.message}"[:500])
            if len(errors) >= MAX_REPORTED_ERRORS:
                break
    except Unresolvable as exc:
        errors.append(f"output_schema has a reference that does not resolve: {exc}"[:500])
    return ValidationResult(score=0.0 if errors else 1.0, errors=errors)
