"""Check the hand-labelled discovery benchmark dataset (bench/discovery_dataset.json).

Checks the schema, unique keys, the counts (agents per category, topic sizes, queries per
category and kind), that every query's relevant list is exactly a union of whole topics, and
that no "paraphrase" query shares a content word with any of its relevant agents.

Two words are "shared" when, after lowercasing, removing accents and dropping English
stopwords, they meet any of these tests:

- the light stem of the benchmark's definition is equal (suffixes s, es, ies->y, ing, ed, er,
  ers, ly, ion, ions, ment, ation are stripped);
- a stricter normal form is equal (suffixes stripped repeatedly, a final "e" dropped, a doubled
  final consonant undoubled, "ise"/"ize" and "our"/"or" spellings merged), so that pairs such
  as translate/translation or plan/planning count as one word;
- one stem begins with the other and the shorter has at least 4 letters (instal/installer,
  coin/cointrack), or the two words share their first 6 letters (season/seasonality).

The stricter tests go beyond the definition on purpose: a paraphrase query is meant to be out
of reach of any lexical stemmer, not only of the simplest one.

Run: .venv/bin/python bench/check_discovery_dataset.py [path]. Exits 1 on any problem.
"""

from __future__ import annotations

import json
import re
import sys
import unicodedata
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

DEFAULT_PATH = Path(__file__).with_name("discovery_dataset.json")

CATEGORIES = (
    "content-creation",
    "data-analysis",
    "code-generation",
    "image-processing",
    "natural-language",
    "research",
    "automation",
    "customer-service",
    "security",
    "finance",
)
QUERY_KINDS = ("paraphrase", "exact-tag", "keyword", "natural")

MIN_AGENTS = 320
MIN_AGENTS_PER_CATEGORY = 30
MIN_TOPIC_SIZE = 3
MAX_TOPIC_SIZE = 5
MIN_QUERIES = 70
MIN_PARAPHRASE_QUERIES = 45
MIN_EXACT_TAG_QUERIES = 6
MIN_WORD_SHARING_QUERIES = 8
MIN_QUERIES_PER_CATEGORY = 5
MAX_NAME_LENGTH = 100
MIN_CAPABILITIES = 2
MAX_CAPABILITIES = 6
MAX_SENTENCES = 3

CAPABILITY_PATTERN = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")
SLUG_PATTERN = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")
QUERY_ID_PATTERN = re.compile(r"^q\d{2,3}$")
TOKEN_PATTERN = re.compile(r"[a-z0-9]+")
# A sentence ends at . ! or ? followed by whitespace and a capital/digit, or at the very end.
SENTENCE_END_PATTERN = re.compile(r"[.!?]+(?=\s+[A-Z0-9\"'(]|\s*$)")

# NLTK's English stopword list (without the contraction fragments that a-z0-9 tokens never
# produce whole), so the check does not depend on nltk being installed.
STOPWORD_LIST = """
    a about above after again against all am an and any are aren as at be because been before
    being below between both but by can couldn d did didn do does doesn doing don down during
    each few for from further had hadn has hasn have haven having he her here hers herself him
    himself his how i if in into is isn it its itself just ll m ma me mightn more most mustn my
    myself needn no nor not now o of off on once only or other our ours ourselves out over own
    re s same shan she should shouldn so some such t than that the their theirs them themselves
    then there these they this those through to too under until up ve very was wasn we were
    weren what when where which while who whom why will with won wouldn y you your yours
    yourself yourselves
"""
STOPWORDS = frozenset(STOPWORD_LIST.split())

# The benchmark's light stemmer: longest suffix first, one strip, stem kept at >= 3 letters.
LIGHT_SUFFIXES = (
    ("ations", ""),
    ("ation", ""),
    ("ments", ""),
    ("ment", ""),
    ("ions", ""),
    ("ion", ""),
    ("ies", "y"),
    ("ers", ""),
    ("ing", ""),
    ("es", ""),
    ("ed", ""),
    ("er", ""),
    ("ly", ""),
    ("s", ""),
)
MIN_STEM_LENGTH = 3
MIN_PREFIX_STEM_LENGTH = 4
SHARED_PREFIX_LENGTH = 6


def fold(text: str) -> str:
    """Lowercase and strip accents, so résumé and resume are one word."""
    decomposed = unicodedata.normalize("NFKD", text.lower())
    return "".join(char for char in decomposed if not unicodedata.combining(char))


def content_words(text: str) -> set[str]:
    return {token for token in TOKEN_PATTERN.findall(fold(text)) if token not in STOPWORDS}


def light_stem(word: str) -> str:
    for suffix, replacement in LIGHT_SUFFIXES:
        if word.endswith(suffix) and len(word) - len(suffix) + len(replacement) >= MIN_STEM_LENGTH:
            if suffix == "s" and word.endswith("ss"):
                return word
            return word[: len(word) - len(suffix)] + replacement
    return word


def strict_stem(word: str) -> str:
    stem = word
    while True:
        shorter = light_stem(stem)
        if shorter == stem:
            break
        stem = shorter
    stem = stem.replace("ise", "ize").replace("our", "or")
    if len(stem) > MIN_STEM_LENGTH and stem.endswith("e"):
        stem = stem[:-1]
    if len(stem) > MIN_STEM_LENGTH and stem[-1] == stem[-2] and stem[-1] not in "aeiousl":
        stem = stem[:-1]
    if len(stem) > MIN_STEM_LENGTH and stem.endswith("i"):
        stem = stem[:-1] + "y"
    return stem


def words_clash(first: str, second: str) -> bool:
    if first == second or light_stem(first) == light_stem(second):
        return True
    stem_a, stem_b = strict_stem(first), strict_stem(second)
    if stem_a == stem_b:
        return True
    shorter, longer = sorted((stem_a, stem_b), key=len)
    if len(shorter) >= MIN_PREFIX_STEM_LENGTH and longer.startswith(shorter):
        return True
    return (
        len(first) >= SHARED_PREFIX_LENGTH
        and len(second) >= SHARED_PREFIX_LENGTH
        and first[:SHARED_PREFIX_LENGTH] == second[:SHARED_PREFIX_LENGTH]
    )


def agent_text(agent: dict[str, Any]) -> str:
    return " ".join([agent["name"], agent["description"], " ".join(agent["capabilities"])])


def sentence_count(description: str) -> int:
    return len(SENTENCE_END_PATTERN.findall(description.strip()))


class Report:
    def __init__(self) -> None:
        self.problems: list[str] = []

    def problem(self, message: str) -> None:
        self.problems.append(message)


def check_agents(data: dict[str, Any], report: Report) -> dict[str, dict[str, Any]]:
    agents_by_key: dict[str, dict[str, Any]] = {}
    for index, agent in enumerate(data.get("agents", [])):
        where = f"agents[{index}]"
        expected = {"key", "name", "description", "capabilities", "category", "topic"}
        if not isinstance(agent, dict) or set(agent) != expected:
            report.problem(f"{where}: fields must be exactly {sorted(expected)}")
            continue
        key = agent["key"]
        where = f"agent {key!r}"
        if not isinstance(key, str) or not SLUG_PATTERN.match(key):
            report.problem(f"{where}: key must be a lowercase slug")
            continue
        if key in agents_by_key:
            report.problem(f"{where}: duplicate key")
        agents_by_key[key] = agent
        name, description, capabilities = agent["name"], agent["description"], agent["capabilities"]
        if not isinstance(name, str) or not name.strip() or len(name) > MAX_NAME_LENGTH:
            report.problem(f"{where}: name must be 1-{MAX_NAME_LENGTH} characters")
        if not isinstance(description, str) or not description.strip():
            report.problem(f"{where}: description is empty")
        elif not 1 <= sentence_count(description) <= MAX_SENTENCES:
            report.problem(
                f"{where}: description has {sentence_count(description)} sentences, "
                f"expected 1-{MAX_SENTENCES}"
            )
        if (
            not isinstance(capabilities, list)
            or not MIN_CAPABILITIES <= len(capabilities) <= MAX_CAPABILITIES
        ):
            report.problem(f"{where}: needs {MIN_CAPABILITIES}-{MAX_CAPABILITIES} capabilities")
        else:
            for capability in capabilities:
                if not isinstance(capability, str) or not CAPABILITY_PATTERN.match(capability):
                    report.problem(f"{where}: capability {capability!r} is not a lowercase tag")
            if len(set(capabilities)) != len(capabilities):
                report.problem(f"{where}: repeated capability")
        if agent["category"] not in CATEGORIES:
            report.problem(f"{where}: unknown category {agent['category']!r}")
        if not isinstance(agent["topic"], str) or not SLUG_PATTERN.match(agent["topic"]):
            report.problem(f"{where}: topic must be a lowercase slug")
    return agents_by_key


def check_topics(agents_by_key: dict[str, dict[str, Any]], report: Report) -> dict[str, set[str]]:
    members: dict[str, set[str]] = defaultdict(set)
    topic_categories: dict[str, set[str]] = defaultdict(set)
    for key, agent in agents_by_key.items():
        members[agent["topic"]].add(key)
        topic_categories[agent["topic"]].add(agent["category"])
    for topic, keys in sorted(members.items()):
        if not MIN_TOPIC_SIZE <= len(keys) <= MAX_TOPIC_SIZE:
            report.problem(
                f"topic {topic!r}: {len(keys)} agents, expected {MIN_TOPIC_SIZE}-{MAX_TOPIC_SIZE}"
            )
        if len(topic_categories[topic]) != 1:
            report.problem(f"topic {topic!r}: spans categories {sorted(topic_categories[topic])}")
    per_category = Counter(agent["category"] for agent in agents_by_key.values())
    for category in CATEGORIES:
        if per_category[category] < MIN_AGENTS_PER_CATEGORY:
            report.problem(
                f"category {category!r}: {per_category[category]} agents, "
                f"expected at least {MIN_AGENTS_PER_CATEGORY}"
            )
    if len(agents_by_key) < MIN_AGENTS:
        report.problem(f"{len(agents_by_key)} agents, expected at least {MIN_AGENTS}")
    return members


def paraphrase_clashes(query: str, relevant: list[dict[str, Any]]) -> list[str]:
    query_words = content_words(query)
    clashes: list[str] = []
    for agent in relevant:
        for agent_word in sorted(content_words(agent_text(agent))):
            clashes.extend(
                f"{query_word!r}~{agent_word!r} ({agent['key']})"
                for query_word in sorted(query_words)
                if words_clash(query_word, agent_word)
            )
    return clashes


def check_queries(
    data: dict[str, Any],
    agents_by_key: dict[str, dict[str, Any]],
    members: dict[str, set[str]],
    report: Report,
) -> None:
    queries = data.get("queries", [])
    seen_ids: set[str] = set()
    seen_texts: set[str] = set()
    kinds: Counter[str] = Counter()
    per_category: Counter[str] = Counter()
    for index, query in enumerate(queries):
        expected = {"id", "query", "relevant", "kind"}
        if not isinstance(query, dict) or set(query) != expected:
            report.problem(f"queries[{index}]: fields must be exactly {sorted(expected)}")
            continue
        query_id, text, relevant, kind = (
            query["id"],
            query["query"],
            query["relevant"],
            query["kind"],
        )
        where = f"query {query_id!r}"
        if not isinstance(query_id, str) or not QUERY_ID_PATTERN.match(query_id):
            report.problem(f"{where}: id must look like q01")
        if query_id in seen_ids:
            report.problem(f"{where}: duplicate id")
        seen_ids.add(query_id)
        if not isinstance(text, str) or not content_words(text):
            report.problem(f"{where}: query text has no content words")
            continue
        if fold(text) in seen_texts:
            report.problem(f"{where}: duplicate query text")
        seen_texts.add(fold(text))
        if kind not in QUERY_KINDS:
            report.problem(f"{where}: unknown kind {kind!r}")
        kinds[kind] += 1
        if not isinstance(relevant, list) or not relevant:
            report.problem(f"{where}: relevant must be a non-empty list")
            continue
        if len(set(relevant)) != len(relevant):
            report.problem(f"{where}: repeated relevant key")
        unknown = [key for key in relevant if key not in agents_by_key]
        if unknown:
            report.problem(f"{where}: unknown relevant keys {unknown}")
            continue
        relevant_agents = [agents_by_key[key] for key in relevant]
        topics = {agent["topic"] for agent in relevant_agents}
        whole = set().union(*(members[topic] for topic in topics))
        if whole != set(relevant):
            missing = sorted(whole - set(relevant))
            report.problem(f"{where}: relevant is not whole topics, missing {missing}")
        for category in {agent["category"] for agent in relevant_agents}:
            per_category[category] += 1
        if kind == "paraphrase":
            clashes = paraphrase_clashes(text, relevant_agents)
            if clashes:
                report.problem(f"{where}: paraphrase shares words: {', '.join(clashes)}")
        elif kind == "exact-tag":
            tags = {tag for agent in relevant_agents for tag in agent["capabilities"]}
            if not any(
                re.search(rf"(?<![a-z0-9-]){re.escape(tag)}(?![a-z0-9-])", text) for tag in tags
            ):
                report.problem(f"{where}: exact-tag query uses no capability tag literally")
        elif not paraphrase_clashes(text, relevant_agents):
            report.problem(f"{where}: {kind} query shares no word with its relevant agents")

    if len(queries) < MIN_QUERIES:
        report.problem(f"{len(queries)} queries, expected at least {MIN_QUERIES}")
    if kinds["paraphrase"] < MIN_PARAPHRASE_QUERIES:
        report.problem(
            f"{kinds['paraphrase']} paraphrase queries, expected {MIN_PARAPHRASE_QUERIES}+"
        )
    if kinds["exact-tag"] < MIN_EXACT_TAG_QUERIES:
        report.problem(f"{kinds['exact-tag']} exact-tag queries, expected {MIN_EXACT_TAG_QUERIES}+")
    if kinds["keyword"] + kinds["natural"] < MIN_WORD_SHARING_QUERIES:
        report.problem(
            f"{kinds['keyword'] + kinds['natural']} keyword/natural queries, "
            f"expected {MIN_WORD_SHARING_QUERIES}+"
        )
    for category in CATEGORIES:
        if per_category[category] < MIN_QUERIES_PER_CATEGORY:
            report.problem(
                f"category {category!r}: {per_category[category]} queries, "
                f"expected at least {MIN_QUERIES_PER_CATEGORY}"
            )


def summary(data: dict[str, Any], members: dict[str, set[str]]) -> list[str]:
    agents = data.get("agents", [])
    queries = data.get("queries", [])
    category_of = {agent["key"]: agent["category"] for agent in agents}
    agent_counts = Counter(agent["category"] for agent in agents)
    topic_counts = Counter(category_of[next(iter(keys))] for keys in members.values())
    query_counts: Counter[str] = Counter()
    for query in queries:
        for category in {category_of.get(key) for key in query.get("relevant", [])} - {None}:
            query_counts[str(category)] += 1
    lines = [f"{'category':<18} agents topics queries"]
    lines.extend(
        f"{category:<18} {agent_counts[category]:>6} {topic_counts[category]:>6} "
        f"{query_counts[category]:>7}"
        for category in CATEGORIES
    )
    sizes = Counter(len(keys) for keys in members.values())
    kinds = Counter(query.get("kind") for query in queries)
    lines.append(f"total: {len(agents)} agents, {len(members)} topics, {len(queries)} queries")
    lines.append("topic sizes: " + ", ".join(f"{size}: {sizes[size]}" for size in sorted(sizes)))
    lines.append("queries per kind: " + ", ".join(f"{kind}: {kinds[kind]}" for kind in QUERY_KINDS))
    return lines


def main(argv: list[str]) -> int:
    path = Path(argv[1]) if len(argv) > 1 else DEFAULT_PATH
    data = json.loads(path.read_text(encoding="utf-8"))
    report = Report()
    if data.get("categories") != list(CATEGORIES):
        report.problem(f"categories must be exactly {list(CATEGORIES)}")
    agents_by_key = check_agents(data, report)
    members = check_topics(agents_by_key, report)
    check_queries(data, agents_by_key, members, report)
    for line in summary(data, members):
        print(line)
    for problem in report.problems:
        print(f"PROBLEM: {problem}")
    if report.problems:
        print(f"{len(report.problems)} problem(s)")
        return 1
    print("OK: no problems")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
