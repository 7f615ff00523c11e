"""What an agent's search document says, and how text becomes lexical terms (pure).

One document per agent: its name, description, capability tags (spelled as words) and the
skills of its A2A agent card. The same text feeds the embedding; the lexical index keeps
three weighted fields, so a capability tag typed exactly outweighs a word in a description.
"""

from __future__ import annotations

import functools
import hashlib
import re
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

# Field weights of the lexical index: a term in a capability tag counts three times, one in
# the name twice, one in the description once.
TAG_WEIGHT = 3.0
NAME_WEIGHT = 2.0
DESCRIPTION_WEIGHT = 1.0

MAX_TERM_LENGTH = 48
MAX_DOCUMENT_CHARS = 8000
MAX_SKILLS = 50

_STOPWORD_TEXT = """
a about above after again against all am an and any are as at be because been before
being below between both but by can could did do does doing down during each few for
from further had has have having he her here hers herself him himself his how i if in
into is it its itself just me more most my myself no nor not now of off on once only or
other our ours ourselves out over own same she should so some such than that the their
theirs them themselves then there these they this those through to too under until up
very was we were what when where which while who whom why will with would you your yours
yourself yourselves need needs want wants help please someone something thing things get
got find me us via using use uses able
"""
STOPWORDS = frozenset(_STOPWORD_TEXT.split())

_WORD = re.compile(r"[^\W_]+", re.UNICODE)
_TAG_SPLIT = re.compile(r"[._:/+\-\s]+")

# Longest suffix first; each rule keeps a stem of at least three characters.
_SUFFIXES: tuple[tuple[str, str], ...] = (
    ("ational", "ate"),
    ("ization", "ize"),
    ("ations", "ate"),
    ("ation", "ate"),
    ("ments", ""),
    ("ment", ""),
    ("ings", ""),
    ("ing", ""),
    ("ies", "y"),
    ("ers", ""),
    ("ions", ""),
    ("ion", ""),
    ("ed", ""),
    ("er", ""),
    ("ly", ""),
    ("es", ""),
    ("s", ""),
)


def stem(word: str) -> str:
    """A light suffix stripper: enough to match plurals and verb forms, never aggressive.

    A final "e" is dropped after stripping, so invoice/invoices, create/created and
    coordinate/coordinating/coordination meet on one stem.
    """
    if len(word) <= 3 or word.isdigit():
        return word
    stemmed = word
    for suffix, replacement in _SUFFIXES:
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            if suffix == "s" and word.endswith(("ss", "us", "is")):
                break
            stemmed = word[: len(word) - len(suffix)] + replacement
            break
    if stemmed.endswith("e") and len(stemmed) > 3:
        stemmed = stemmed[:-1]
    return stemmed


def normalize(text: str) -> str:
    """Case-folded, compatibility-normalised text with accents removed."""
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    return "".join(char for char in decomposed if not unicodedata.combining(char))


def words(text: str) -> list[str]:
    return _WORD.findall(normalize(text))


def terms(text: str) -> list[str]:
    """Lexical terms of ``text``: words minus stopwords, stemmed, in order, with repeats."""
    return [
        stem(word)[:MAX_TERM_LENGTH]
        for word in words(text)
        if word not in STOPWORDS and (len(word) > 1 or word.isdigit())
    ]


def tag_words(tag: str) -> str:
    """A capability tag as words: ``financial-analysis`` becomes ``financial analysis``."""
    return " ".join(part for part in _TAG_SPLIT.split(tag) if part)


def tag_phrase(tag: str) -> tuple[str, ...]:
    """The tag's words, normalised, for exact-phrase matching against a query."""
    return tuple(words(tag_words(tag)))


@dataclass(frozen=True)
class Skill:
    name: str
    description: str
    tags: tuple[str, ...]


def card_skills(metadata: Mapping[str, Any] | None) -> list[Skill]:
    """Skills of the A2A agent card kept in the agent's metadata under ``agent_card``.

    Malformed entries are skipped rather than trusted: the card comes from the agent.
    """
    if not metadata:
        return []
    card = metadata.get("agent_card")
    if not isinstance(card, Mapping):
        return []
    raw_skills = card.get("skills")
    if not isinstance(raw_skills, list):
        return []
    skills: list[Skill] = []
    for raw in raw_skills[:MAX_SKILLS]:
        if not isinstance(raw, Mapping):
            continue
        name = raw.get("name")
        description = raw.get("description")
        tags = raw.get("tags")
        skills.append(
            Skill(
                name=name if isinstance(name, str) else "",
                description=description if isinstance(description, str) else "",
                tags=tuple(tag for tag in tags if isinstance(tag, str))
                if isinstance(tags, list)
                else (),
            )
        )
    return skills


def index_tags(capabilities: Sequence[str], metadata: Mapping[str, Any] | None) -> tuple[str, ...]:
    """Capability tags and the agent card's skill tags, as the index weighs them."""
    tags = list(capabilities)
    for skill in card_skills(metadata):
        tags.extend(skill.tags)
    return tuple(dict.fromkeys(tags))


@dataclass(frozen=True)
class SearchDocument:
    """What the index holds about one agent's text."""

    text: str  # embedded as is (cut at MAX_DOCUMENT_CHARS)
    full_text_hash: str  # of the text before the cut: any edit changes it
    weighted_terms: dict[str, float]  # term -> field-weighted frequency
    length: float  # the sum of the weights: BM25's document length
    tags: tuple[str, ...]  # capability tags and skill tags, lower case
    skill_names: tuple[str, ...]

    @property
    def content_hash(self) -> str:
        return self.full_text_hash


def build_document(
    *,
    name: str,
    description: str,
    capabilities: Sequence[str],
    metadata: Mapping[str, Any] | None = None,
) -> SearchDocument:
    skills = card_skills(metadata)
    tags = list(dict.fromkeys(tag.lower() for tag in capabilities))
    for skill in skills:
        tags.extend(tag.lower() for tag in skill.tags if tag.lower() not in tags)
    tag_text = ", ".join(tag_words(tag) for tag in tags)
    skill_text = " ".join(
        f"{skill.name}: {skill.description}".strip(": ") for skill in skills if skill.name
    )
    parts = [name.strip(), description.strip()]
    if tag_text:
        parts.append(f"Capabilities: {tag_text}.")
    if skill_text:
        parts.append(f"Skills: {skill_text}")
    full_text = "\n".join(part for part in parts if part)

    weighted: dict[str, float] = {}
    _add(weighted, terms(name), NAME_WEIGHT)
    _add(weighted, terms(f"{description} {skill_text}"), DESCRIPTION_WEIGHT)
    _add(weighted, (term for tag in tags for term in terms(tag_words(tag))), TAG_WEIGHT)
    return SearchDocument(
        text=full_text[:MAX_DOCUMENT_CHARS],
        full_text_hash=hashlib.sha256(full_text.encode("utf-8")).hexdigest(),
        weighted_terms=dict(weighted),
        length=float(sum(weighted.values())),
        tags=tuple(tags),
        skill_names=tuple(skill.name for skill in skills if skill.name),
    )


def _add(totals: dict[str, float], found: Iterable[str], weight: float) -> None:
    for term in found:
        totals[term] = totals.get(term, 0.0) + weight


def query_phrase(query: str) -> str:
    """The query's words, space-padded, to look tags up in with ``tags_in``."""
    return f" {' '.join(words(query.replace('-', ' ').replace('_', ' ')))} "


@functools.lru_cache(maxsize=8192)
def _padded_tag(tag: str) -> str:
    # Tags repeat across agents and queries; normalising each once keeps ranking cheap.
    phrase = tag_phrase(tag)
    return f" {' '.join(phrase)} " if phrase else ""


def tags_in(phrase: str, tags: Iterable[str]) -> list[str]:
    """Those of ``tags`` written out in full in a ``query_phrase``."""
    return [tag for tag in tags if (padded := _padded_tag(tag)) and padded in phrase]


def matched_tags(query: str, tags: Iterable[str]) -> list[str]:
    """Tags written out in full in the query (as ``pdf-extraction`` or ``pdf extraction``)."""
    return tags_in(query_phrase(query), tags)
