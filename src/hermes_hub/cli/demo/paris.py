"""``hermes demo``: the Paris story (the seeds' user journey), told live against a real hub.

Three SDK agents that book flights enroll. Other customers hire them for a week's worth
of earlier jobs, so each has a track record and a trust score of its own. Then you set
your priorities (price 10, performance 30, speed 20, trust 40), post "Book me a flight to
Paris next week" for 5 credits, and watch: the bids arriving, the hub scoring them by your
weights and awarding, the winner delivering, settlement releasing escrow, the winner's trust
and badges changing, and every balance.

Everything shown is read back from the hub's API and event stream; nothing is computed
here but the arithmetic for the narration.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from hermes_hub.cli.demo.cast import TRAVEL, TravelAgent, travel_agents
from hermes_hub.cli.demo.narration import Narrator, escape, money, percent, trust_text
from hermes_hub.cli.demo.people import Inbox, Person, buy_credits, sign_up
from hermes_hub.cli.demo.stage import running
from hermes_hub.sdk.agent import AgentHandle

INTENT = "Book me a flight to Paris next week"
REWARD = Decimal("5")
WEIGHTS = {"price": 10, "performance": 30, "speed": 20, "trust": 40}
BIDDING_SECONDS = 4
# Also the horizon against which the hub scores each bid's promised time.
DEADLINE_SECONDS = 120
YOUR_CREDITS = Decimal("20")

# The earlier week: who hired whom, and how each customer judged the work.
CUSTOMERS = ("Ana", "Ben", "Chloe")
HISTORY: dict[str, tuple[tuple[str, int], ...]] = {
    # agent: ((customer, jobs), ...)
    "SkyScout": (("Ana", 3), ("Ben", 3), ("Chloe", 3)),
    "BudgetHop": (("Ben", 2), ("Chloe", 3)),
    "JetSetter": (("Ana", 2), ("Ben", 2)),
}
# agent: (validation score, stars) its customers gave each delivery.
JUDGEMENT: dict[str, tuple[float, int]] = {
    "SkyScout": (0.98, 5),
    "BudgetHop": (0.75, 3),
    "JetSetter": (0.90, 4),
}
EARLIER_TRIPS = (
    ("Rome", "Berlin"),
    ("Lisbon", "London"),
    ("Berlin", "Rome"),
    ("London", "Lisbon"),
)
# Earlier jobs give their agent this long: the flaky one's failures end at this deadline.
EARLIER_DEADLINE_SECONDS = 4
BIDDING_EVENTS = ("contract.bid", "contract.awarded", "contract.expired")
DONE = ("contract.delivered", "contract.failed", "contract.expired", "contract.cancelled")


@dataclass(frozen=True)
class Standing:
    """An agent's trust as the marketplace shows it."""

    trust: float
    grade: str
    level: str
    badges: tuple[str, ...]
    contracts: int
    success_rate: float | None
    mean_rating: float | None

    @classmethod
    def of(cls, reputation: dict[str, Any]) -> Standing:
        stats = reputation.get("stats") or {}
        return cls(
            trust=float(reputation["trust_score"]),
            grade=str(reputation["grade"]),
            level=str(reputation["level"]),
            badges=tuple(str(badge["badge"]) for badge in reputation.get("badges") or []),
            contracts=int(stats.get("contracts") or 0),
            success_rate=stats.get("success_rate"),
            mean_rating=stats.get("mean_rating"),
        )


async def standing(viewer: Person, agent_id: str) -> Standing:
    return Standing.of(await viewer.client.reputation(agent_id))


# ---- the earlier week ----


async def _earlier_job(
    customer: Person,
    inbox: Inbox,
    agent: AgentHandle,
    bidders: int,
    trip: tuple[str, str],
    judgement: tuple[float, int],
) -> bool:
    """One earlier job: post, wait for every bid, hire ``agent``, judge the delivery.
    Returns whether it was delivered."""
    origin, destination = trip
    contract = await customer.client.create_contract(
        f"Flight from {origin} to {destination}",
        TRAVEL,
        REWARD,
        bidding_seconds=300,
        deadline_seconds=EARLIER_DEADLINE_SECONDS,
        context={"from": origin, "to": destination},
    )
    contract_id = str(contract["id"])
    chosen = None
    for _ in range(bidders):
        bid = (await inbox.next(contract_id, ("contract.bid",)))["data"]["bid"]
        if bid["agent_id"] == agent.agent_id:
            chosen = bid["bid_id"]
    if chosen is None:
        raise RuntimeError(f"agent {agent.agent_id} did not bid on {contract_id}")
    await customer.client.award(contract_id, chosen)
    ending = await inbox.next(contract_id, DONE)
    if ending["type"] != "contract.delivered":
        return False
    score, stars = judgement
    await customer.client.settle(contract_id, score, rating=stars)
    return True


async def earlier_week(
    narrator: Narrator,
    customers: dict[str, Person],
    agents: list[TravelAgent],
    handles: dict[str, AgentHandle],
) -> dict[str, tuple[int, int]]:
    """Every earlier job at once; returns (delivered, failed) per agent."""
    jobs: list[tuple[str, Any]] = []
    async with (
        Inbox(customers["Ana"].client) as ana,
        Inbox(customers["Ben"].client) as ben,
        Inbox(customers["Chloe"].client) as chloe,
    ):
        inboxes = {"Ana": ana, "Ben": ben, "Chloe": chloe}
        for agent in agents:
            for customer, count in HISTORY[agent.name]:
                for number in range(count):
                    trip = EARLIER_TRIPS[(number + len(jobs)) % len(EARLIER_TRIPS)]
                    jobs.append(
                        (
                            agent.name,
                            _earlier_job(
                                customers[customer],
                                inboxes[customer],
                                handles[agent.name],
                                len(agents),
                                trip,
                                JUDGEMENT[agent.name],
                            ),
                        )
                    )
        narrator.say(
            f"{len(jobs)} earlier jobs from {', '.join(CUSTOMERS)}: each posts a trip, all three "
            "agents bid, the customer hires the agent it wants and scores the work."
        )
        delivered = await asyncio.gather(*(job for _, job in jobs))
    tally: dict[str, tuple[int, int]] = {agent.name: (0, 0) for agent in agents}
    for (name, _), ok in zip(jobs, delivered, strict=True):
        done, failed = tally[name]
        tally[name] = (done + 1, failed) if ok else (done, failed + 1)
    return tally


# ---- the story ----


async def story(hub_url: str, folder: Path, narrator: Narrator, people: list[Person]) -> None:
    narrator.chapter("Three flight-booking agents enroll")
    developer = await sign_up(hub_url, "Dev")
    people.append(developer)
    agents = travel_agents()
    async with running(agents, developer, hub_url, folder) as started:
        handles = {agent.name: handle for agent, handle in zip(agents, started, strict=True)}
        narrator.table(
            "Each is an SDK Agent: Ed25519 enrollment, an A2A server, the hub's event stream",
            ("agent", "asks>", "promises>", "confidence>", "its own A2A endpoint"),
            [
                (
                    agent.name,
                    money(agent.style.price),
                    f"{agent.style.eta_seconds} s",
                    f"{agent.style.confidence:.2f}",
                    handles[agent.name].url,
                )
                for agent in agents
            ],
        )

        narrator.chapter("A week of earlier work builds each agent's track record")
        customers = {name: await sign_up(hub_url, name) for name in CUSTOMERS}
        people.extend(customers.values())
        for customer in customers.values():
            await buy_credits(customer, Decimal(100))
        tally = await earlier_week(narrator, customers, agents, handles)
        viewer = customers["Ana"]
        before = {name: await standing(viewer, handle.agent_id) for name, handle in handles.items()}
        narrator.table(
            "Trust after the earlier week (computed by the hub from the measured outcomes)",
            ("agent", "delivered>", "failed>", "mean rating>", "trust>", "grade", "badges"),
            [
                (
                    name,
                    tally[name][0],
                    tally[name][1],
                    f"{before[name].mean_rating:.1f}" if before[name].mean_rating else "-",
                    trust_text(before[name].trust),
                    before[name].grade,
                    ", ".join(before[name].badges) or "-",
                )
                for name in handles
            ],
        )

        narrator.chapter("You set your priorities")
        you = await sign_up(hub_url, "You")
        people.append(you)
        wallet = await buy_credits(you, YOUR_CREDITS)
        narrator.say(
            f"You bought {money(wallet['available'])} credits with the sandbox's test card."
        )
        shares = (await you.client.set_preferences(**WEIGHTS))["normalized"]
        narrator.table(
            "My priorities",
            ("weight", "share>"),
            [
                ("price", percent(shares["price"])),
                (
                    "performance (the bid's confidence)",
                    percent(shares["performance"]),
                ),
                ("speed (promised time)", percent(shares["speed"])),
                ("trust", percent(shares["reputation"]) + "  <- critical!"),
            ],
        )

        async with Inbox(you.client) as inbox:
            await _auction(narrator, you, inbox, agents, handles, before)


async def _auction(
    narrator: Narrator,
    you: Person,
    inbox: Inbox,
    agents: list[TravelAgent],
    handles: dict[str, AgentHandle],
    before: dict[str, Standing],
) -> None:
    names = {handle.agent_id: name for name, handle in handles.items()}
    narrator.chapter("You post the job")
    wallet_before = await you.client.wallet()
    earnings_before = {agent.name: await agent.hub.wallet() for agent in agents}
    contract = await you.client.create_contract(
        INTENT,
        TRAVEL,
        REWARD,
        bidding_seconds=BIDDING_SECONDS,
        deadline_seconds=DEADLINE_SECONDS,
        context={"from": "London", "to": "Paris", "when": "next week"},
    )
    contract_id = str(contract["id"])
    posted = await you.client.wallet()
    narrator.say(f'"{escape(INTENT)}", reward {money(REWARD)} credits: contract {contract_id}.')
    narrator.say(
        f"Escrow holds the reward: your wallet shows {money(posted['available'])} available, "
        f"{money(posted['held'])} held."
    )

    narrator.chapter(f"Bids arrive (bidding is open for {BIDDING_SECONDS} s)")
    while True:
        event = await inbox.next(contract_id, BIDDING_EVENTS)
        if event["type"] != "contract.bid":
            break
        bid = event["data"]["bid"]
        name = names.get(bid["agent_id"], bid["agent_id"])
        narrator.say(
            f"[bold]{escape(name)}[/bold] bids {money(bid['price'])} credits, "
            f"{bid['eta_seconds']} s, confidence {bid['confidence']:.2f} "
            f"(trust {trust_text(before[name].trust) if name in before else '?'})"
        )
    if event["type"] != "contract.awarded":
        narrator.say(
            f"The contract ended without an award: {escape(str(event['data'].get('reason')))}"
        )
        return

    narrator.chapter("The hub scores every bid by your weights and awards")
    awarded = await you.client.get_contract(contract_id)
    report = awarded["award_report"]
    weights = report["weights"]
    rows = []
    for entry in report["ranking"]:
        points = [
            f"{100 * weights[part] * entry['components'][part]:.1f}"
            for part in ("price", "performance", "speed", "reputation")
        ]
        rows.append(
            (
                entry["rank"] or "-",
                names.get(entry["agent_id"], entry["agent_id"]),
                money(entry["price"]),
                f"{entry['eta_seconds']} s",
                f"{entry['confidence']:.2f}",
                trust_text(entry["trust"]),
                f"{entry['score']:.1f}",
                " + ".join(points),
            )
        )
    narrator.table(
        "Each component is 0..1, times your weight, times 100",
        (
            "#",
            "agent",
            "price>",
            "ETA>",
            "conf>",
            "trust>",
            "score>",
            "= price + perf + speed + trust",
        ),
        rows,
    )
    winner_id = str(awarded["awarded_agent_id"])
    winner = names.get(winner_id, winner_id)
    price = Decimal(str(awarded["price"]))
    after_award = await you.client.wallet()
    narrator.say(
        f"[bold green]{escape(winner)} wins[/bold green] at {money(price)} credits: "
        f"{escape(str(report['ranking'][0]['reason']))}; awarded by "
        f"{escape(str(report.get('awarded_by', 'the hub')))} when bidding closed."
    )
    narrator.say(
        f"Escrow now holds the price, {money(after_award['held'])}; the "
        f"{money(REWARD - price)} left of the reward is back in your wallet "
        f"({money(after_award['available'])} available)."
    )

    narrator.chapter(f"{winner} delivers")
    ending = await inbox.next(contract_id, DONE, within=DEADLINE_SECONDS + 30)
    if ending["type"] != "contract.delivered":
        narrator.say(f"No delivery: {escape(str(ending['data'].get('reason')))}")
        return
    delivered = await you.client.get_contract(contract_id)
    took = (
        datetime.fromisoformat(delivered["delivered_at"])
        - datetime.fromisoformat(delivered["awarded_at"])
    ).total_seconds()
    promised = int(delivered["promised_eta_seconds"])
    pace = "faster than promised!" if took <= promised else "later than promised"
    narrator.say(f"Delivered in {took:.1f} s against a promised {promised} s: {pace}")
    result = (delivered.get("delivery") or {}).get("data") or {}
    narrator.say(f"[italic]{escape(str(result.get('text', result)))}[/italic]")
    narrator.say(
        f"The hub's automatic check of the delivery scored it "
        f"{delivered.get('auto_validation_score')}."
    )

    narrator.chapter("You accept the work: settlement")
    settled = await you.client.settle(
        contract_id, 0.95, rating=5, comment="Great fare, and booked in seconds."
    )
    money_moves = settled["settlement"]
    narrator.say("You scored the delivery 0.95 and rated it 5 stars.")
    narrator.table(
        "Escrow released",
        ("", "credits>"),
        [
            ("held in escrow", money(money_moves["held"])),
            ("released", money(money_moves["released"])),
            ("  to " + winner, money(money_moves["agent_share"])),
            ("  platform fee", money(money_moves["platform_fee"])),
            ("  organization share", money(money_moves["org_share"])),
            ("refunded to you", money(money_moves["refunded"])),
        ],
    )
    narrator.say("Metric recorded: success, on time. The trust score is recomputed at once.")

    narrator.chapter("Trust, badges and balances")
    after = await standing(you, winner_id)
    earlier = before.get(winner)
    if earlier is not None:
        direction = (
            "improved!"
            if after.trust > earlier.trust
            else "unchanged"
            if after.trust == earlier.trust
            else "down"
        )
        narrator.say(
            f"{escape(winner)}'s trust: {trust_text(earlier.trust)} ({earlier.grade}) -> "
            f"{trust_text(after.trust)} ({after.grade}), {direction}"
        )
        for badge in after.badges:
            if badge not in earlier.badges:
                narrator.say(f"[bold yellow]Badge earned: {escape(badge)}[/bold yellow]")
    wallet_after = await you.client.wallet()
    narrator.table(
        "Balances",
        ("wallet", "before>", "after>"),
        [
            (
                "you (available)",
                money(wallet_before["available"]),
                money(wallet_after["available"]),
            ),
            ("you (held)", money(wallet_before["held"]), money(wallet_after["held"])),
            *[
                (
                    f"{agent.name}'s earnings",
                    money(earnings_before[agent.name]["total"]),
                    money((await agent.hub.wallet())["total"]),
                )
                for agent in agents
            ],
        ],
    )
    narrator.table(
        f"{winner} in the marketplace",
        ("trust", "grade", "level", "badges", "contracts>", "success rate>", "mean rating>"),
        [
            (
                percent(after.trust),
                after.grade,
                after.level,
                ", ".join(after.badges) or "-",
                after.contracts,
                percent(after.success_rate) if after.success_rate is not None else "-",
                f"{after.mean_rating:.2f}" if after.mean_rating is not None else "-",
            )
        ],
    )
