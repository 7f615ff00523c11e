"""The demo's agents: ordinary SDK agents (``hermes_hub.sdk.Agent``), each with its own
prices, speed and quality, so that the hub has something real to choose between.

The flights they "book" are made up: they are example agents, and their answers are built
from the contract's words and context, never looked up anywhere.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal
from typing import Any, ClassVar

from hermes_hub.sdk.agent import Agent, Bid, Contract

TRAVEL = "travel.booking"
TRANSLATION = "translation"

AIRLINES = ("Air France", "British Airways", "easyJet", "Lufthansa", "KLM")
AIRPORTS = {"paris": "CDG", "london": "LHR", "berlin": "BER", "rome": "FCO", "lisbon": "LIS"}


@dataclass(frozen=True)
class Style:
    """How one agent works: what it asks, what it promises, and how long it really takes."""

    price: Decimal
    eta_seconds: int
    confidence: float
    work_seconds: float
    # Every n-th job fails (the fare expires before booking); 0: never.
    fails_every: int = 0


class TravelAgent(Agent):
    """Books flights (made up ones) for any contract asking for ``travel.booking``."""

    capabilities = (TRAVEL,)

    def __init__(self, name: str, description: str, style: Style) -> None:
        super().__init__(name=name, description=description, price=style.price)
        self.style = style
        self.jobs = 0

    async def bid(self, contract: Contract) -> Bid | None:
        if contract.capability != TRAVEL or self.style.price > contract.price_cap:
            return None
        return Bid(
            price=self.style.price,
            eta_seconds=self.style.eta_seconds,
            confidence=self.style.confidence,
        )

    async def perform(self, contract: Contract) -> dict[str, Any]:
        self.jobs += 1
        job = self.jobs
        await asyncio.sleep(self.style.work_seconds)
        if self.style.fails_every and job % self.style.fails_every == 0:
            raise RuntimeError("the fare expired before it could be booked")
        return itinerary(self.name, contract)


def _city_to(intent: str, context: dict[str, Any]) -> str:
    named = context.get("to")
    if isinstance(named, str) and named.strip():
        return named.strip().title()
    found = re.search(r"\bto ([A-Z][a-z]+)", intent)
    return found.group(1) if found else "Paris"


def itinerary(agent_name: str, contract: Contract) -> dict[str, Any]:
    """A plausible booking, the same every time for the same agent and contract."""
    destination = _city_to(contract.intent, contract.context)
    origin = str(contract.context.get("from") or "London").title()
    seed = int.from_bytes(hashlib.sha256(f"{agent_name}:{contract.id}".encode()).digest()[:4])
    departing = date.today() + timedelta(days=7 + seed % 3)
    airline = AIRLINES[seed % len(AIRLINES)]
    code = "".join(word[0] for word in airline.split()).upper()[:2].ljust(2, "X")
    flight = f"{code} {100 + seed % 900}"
    hour, minute = 6 + seed % 14, (seed // 7) % 4 * 15
    fare = 79 + seed % 160
    return {
        "text": (
            f"Booked {airline} {flight}, {origin} to {destination}, "
            f"{departing:%A %d %B} at {hour:02d}:{minute:02d}, EUR {fare}."
        ),
        "airline": airline,
        "flight": flight,
        "from": AIRPORTS.get(origin.lower(), origin[:3].upper()),
        "to": AIRPORTS.get(destination.lower(), destination[:3].upper()),
        "departs": f"{departing.isoformat()}T{hour:02d}:{minute:02d}",
        "fare_eur": fare,
        "booking_reference": hashlib.sha256(f"{flight}{seed}".encode()).hexdigest()[:6].upper(),
    }


def travel_agents() -> list[TravelAgent]:
    """The three bidders of the Paris story (the seed's agents A, B and C): a careful premium
    agent, a cheap slow one, and a solid middle one."""
    return [
        TravelAgent(
            "SkyScout",
            "Premium flight booking: checks fares across airlines and books the best one.",
            Style(price=Decimal("4.50"), eta_seconds=20, confidence=0.92, work_seconds=1.0),
        ),
        TravelAgent(
            "BudgetHop",
            "Cheapest flights, booked when the fare drops.",
            Style(
                price=Decimal("2.00"),
                eta_seconds=60,
                confidence=0.70,
                work_seconds=1.0,
                fails_every=2,
            ),
        ),
        TravelAgent(
            "JetSetter",
            "Flight and rail booking for business travellers.",
            Style(price=Decimal("3.80"), eta_seconds=30, confidence=0.85, work_seconds=1.0),
        ),
    ]


class Translator(Agent):
    """Translates short English phrases word by word from a small phrasebook (an example
    agent for the A2A demo: what matters is the call, not the translation)."""

    name = "Phrasebook"
    description = "Translates short travel phrases from English into French."
    capabilities = (TRANSLATION,)
    price = Decimal("0.50")

    PHRASES: ClassVar[dict[str, str]] = {
        "good morning": "bonjour",
        "thank you": "merci",
        "where is the station": "où est la gare",
        "a coffee please": "un café s'il vous plaît",
        "the bill please": "l'addition s'il vous plaît",
    }
    WORDS: ClassVar[dict[str, str]] = {
        "hello": "bonjour",
        "please": "s'il vous plaît",
        "thanks": "merci",
        "flight": "vol",
        "ticket": "billet",
        "train": "train",
        "hotel": "hôtel",
        "where": "où",
        "is": "est",
        "the": "le",
        "airport": "aéroport",
        "station": "gare",
        "my": "mon",
    }

    async def perform(self, contract: Contract) -> dict[str, Any]:
        phrase = contract.intent.strip().rstrip("?.!").lower()
        french = self.PHRASES.get(phrase) or " ".join(
            self.WORDS.get(word, word) for word in re.findall(r"[\w']+", phrase)
        )
        return {"text": french, "source": contract.intent, "language": "fr"}
