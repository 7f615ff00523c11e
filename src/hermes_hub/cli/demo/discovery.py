"""``hermes demo discovery``: a dozen agents enroll saying what they do, and you find them
by what you need, in your own words (semantic search when the embedding model is
installed, words alone otherwise; the hub says which)."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

from hermes_hub.cli.demo.narration import Narrator, escape, money, trust_text
from hermes_hub.cli.demo.people import Person, sign_up
from hermes_hub.sdk.keys import generate_private_key

SHOWN = 3


@dataclass(frozen=True)
class Listing:
    name: str
    description: str
    capabilities: tuple[str, ...]
    price: Decimal


LISTINGS = (
    Listing(
        "Lingo",
        "Translates documents, websites and app strings between 40 languages, "
        "Japanese and Korean included.",
        ("translation", "localization"),
        Decimal("1.20"),
    ),
    Listing(
        "QuickTranslate",
        "Fast machine translation of short texts, English to Spanish, French and German.",
        ("translation",),
        Decimal("0.30"),
    ),
    Listing(
        "CodeGuard",
        "Audits Python and JavaScript for security vulnerabilities: injection, unsafe "
        "deserialization, leaked secrets.",
        ("code.review", "security.audit"),
        Decimal("4.00"),
    ),
    Listing(
        "PyLint Pro",
        "Reviews pull requests for style, typing and test coverage.",
        ("code.review",),
        Decimal("1.50"),
    ),
    Listing(
        "SkyScout",
        "Books flights: compares fares across airlines and books the best one.",
        ("travel.booking",),
        Decimal("4.50"),
    ),
    Listing(
        "RailMate",
        "Train tickets across Europe, seat reservations and rail passes.",
        ("travel.booking", "rail"),
        Decimal("2.00"),
    ),
    Listing(
        "Scribe",
        "Proofreads and edits essays, reports and cover letters in English.",
        ("editing", "writing"),
        Decimal("1.00"),
    ),
    Listing(
        "Digest",
        "Summarises long articles, papers and meeting transcripts into key points.",
        ("summarization",),
        Decimal("0.80"),
    ),
    Listing(
        "LedgerBot",
        "Categorises bank transactions and prepares quarterly VAT returns.",
        ("accounting", "tax"),
        Decimal("6.00"),
    ),
    Listing(
        "ChartSmith",
        "Turns CSV and spreadsheet data into charts and dashboards.",
        ("data.visualization",),
        Decimal("2.50"),
    ),
    Listing(
        "Headhunter",
        "Screens CVs against a job description and shortlists candidates.",
        ("recruiting",),
        Decimal("3.00"),
    ),
    Listing(
        "Chef",
        "Plans a week of meals from what is in your fridge, with a shopping list.",
        ("meal.planning",),
        Decimal("0.50"),
    ),
)

# What people ask, in words that mostly are not the agents' own.
QUERIES: tuple[tuple[str, dict[str, Any]], ...] = (
    ("make my web shop readable for customers in Tokyo", {}),
    ("is there a hole in my Flask app an attacker could use?", {}),
    ("get me from Munich to Vienna by rail", {}),
    ("my thesis needs a careful read for grammar mistakes", {}),
    ("translate a paragraph into Spanish", {"max_price": Decimal("0.50")}),
)


async def story(hub_url: str, folder: Path, narrator: Narrator, people: list[Person]) -> None:
    narrator.chapter(f"{len(LISTINGS)} agents enroll, each saying what it does")
    builder = await sign_up(hub_url, "Builder")
    people.append(builder)
    for listing in LISTINGS:
        await builder.client.enroll_agent(
            generate_private_key(),
            listing.name,
            description=listing.description,
            capabilities=list(listing.capabilities),
            price=listing.price,
        )
    narrator.table(
        "Enrolled with an Ed25519 key each",
        ("agent", "capabilities", "price>", "description"),
        [
            (
                listing.name,
                ", ".join(listing.capabilities),
                money(listing.price),
                listing.description,
            )
            for listing in LISTINGS
        ],
    )

    narrator.chapter("You ask in your own words")
    you = await sign_up(hub_url, "You")
    people.append(you)
    for query, filters in QUERIES:
        found = await you.client.discover_agents(query, limit=SHOWN, **filters)
        how = "meaning and words" if found.get("semantic_search") else "words only"
        limits = "".join(f", {name} {money(value)}" for name, value in filters.items())
        narrator.say(f'[bold]"{escape(query)}"[/bold]  [dim]({how}{escape(limits)})[/dim]')
        results = found.get("results") or []
        if not results:
            narrator.say("  nobody fits")
            continue
        narrator.table(
            "",
            ("#", "agent", "relevance>", "price>", "trust>", "why"),
            [
                (
                    rank,
                    result["name"],
                    f"{result['relevance']:.2f}",
                    money((result.get("pricing") or {}).get("base_price", 0)),
                    trust_text(result["trust_score"]),
                    result.get("why") or "",
                )
                for rank, result in enumerate(results, start=1)
            ],
        )
    narrator.note(
        "Relevance blends meaning (an embedding model run offline) with word matches (BM25); "
        "the ranking also weighs trust. Private agents appear only to callers their ACL allows."
    )
