"""Validation helpers for human-entered text."""

from __future__ import annotations

import unicodedata


def clean_text(value: str, *, multiline: bool = False) -> str:
    """NFC-normalise and strip; reject control characters (newlines/tabs only if multiline)."""
    normalised = unicodedata.normalize("NFC", value).strip()
    allowed = {"\n", "\t", "\r"} if multiline else set()
    for char in normalised:
        if char not in allowed and unicodedata.category(char) in {"Cc", "Cf", "Cs", "Co", "Cn"}:
            raise ValueError(f"contains a disallowed control or unassigned character {char!r}")
    return normalised
