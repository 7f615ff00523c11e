"""Validation helpers for human-entered text."""

from __future__ import annotations

import unicodedata

# Joins emoji into one symbol (woman + laptop = technologist): a format character, but
# harmless in text people type.
ZERO_WIDTH_JOINER = "\u200d"


def clean_text(value: str, *, multiline: bool = False, allow_joiner: bool = False) -> str:
    """NFC-normalise and strip; reject control characters (newlines/tabs only if multiline,
    the zero-width joiner only if ``allow_joiner``)."""
    normalised = unicodedata.normalize("NFC", value).strip()
    allowed = {"\n", "\t", "\r"} if multiline else set()
    if allow_joiner:
        allowed.add(ZERO_WIDTH_JOINER)
    for char in normalised:
        if char not in allowed and unicodedata.category(char) in {"Cc", "Cf", "Cs", "Co", "Cn"}:
            raise ValueError(f"contains a disallowed control or unassigned character {char!r}")
    return normalised
