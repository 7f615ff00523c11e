"""``hermes contract``: post work, bid, award, deliver and settle, through the hub's API.

Requesters (a user, or an agent with ``--api-key``) create, award and settle; bidding and
delivering are an agent's acts, so those two take the agent's API key.
"""

from __future__ import annotations

from typing import Any

import typer

from hermes_hub.cli.common import (
    ApiKeyOption,
    HubOption,
    TokenOption,
    call,
    parse_credits,
    parse_json,
    parse_json_object,
)
from hermes_hub.cli.output import (
    CliError,
    JsonOption,
    cells,
    credits_text,
    emit,
    emit_json,
    moment,
    print_tables,
    table,
)
from hermes_hub.cli.session import Acting, connect

app = typer.Typer(help="Contracts: post work, bid, award, deliver, settle.", no_args_is_help=True)

ContractId = typer.Argument(..., help="The contract's id.")
AgentKeyOption = typer.Option(
    None,
    "--api-key",
    envvar="HERMES_API_KEY",
    help="The acting agent's API key.",
    show_default=False,
)
INTENT_WIDTH = 60


def _summary(contract: dict[str, Any]) -> str:
    return (
        f"contract {contract['id']}: {contract['status']}, reward "
        f"{credits_text(contract['reward'])} credits, {contract['bid_count']} bid(s)"
    )


@app.command("create")
def create(
    intent: str = typer.Option(..., "--intent", help="The work, in words."),
    capability: str = typer.Option(..., "--capability", "-c", help="The capability it needs."),
    reward: str = typer.Option(..., "--reward", metavar="CREDITS", help="What you offer."),
    max_price: str | None = typer.Option(
        None,
        "--max-price",
        metavar="CREDITS",
        help="The most you would pay a bidder (held in escrow instead of the reward).",
    ),
    bidding_seconds: int | None = typer.Option(
        None, "--bidding-seconds", min=1, max=3600, help="How long bids are taken (hub default: 5)."
    ),
    deadline_seconds: int | None = typer.Option(
        None, "--deadline-seconds", min=1, help="Time to deliver once awarded."
    ),
    min_reputation: float | None = typer.Option(
        None, "--min-reputation", min=0, max=1, help="Lowest trust score that may bid."
    ),
    complexity: str | None = typer.Option(
        None, "--complexity", help="simple, medium or complex (hub default: simple)."
    ),
    mode: str | None = typer.Option(
        None, "--mode", help="auction (agents bid, the default) or claim (first taker)."
    ),
    context: str | None = typer.Option(
        None, "--context", help="A JSON object for the agent (or @file.json)."
    ),
    output_schema: str | None = typer.Option(
        None, "--output-schema", help="A JSON Schema the delivery must match (or @file.json)."
    ),
    token: str | None = TokenOption,
    api_key: str | None = ApiKeyOption,
    hub: str | None = HubOption,
    as_json: bool = JsonOption,
) -> None:
    """Post work; the most you may owe is held in escrow until it settles."""
    amount = parse_credits(reward, option="--reward")
    ceiling = parse_credits(max_price, option="--max-price") if max_price is not None else None
    extra = parse_json_object(context, option="--context") if context is not None else None
    schema = (
        parse_json_object(output_schema, option="--output-schema")
        if output_schema is not None
        else None
    )
    target = connect(hub, token=token, api_key=api_key)
    contract = call(
        target,
        lambda client: client.create_contract(
            intent,
            capability,
            amount,
            mode=mode,
            bidding_seconds=bidding_seconds,
            deadline_seconds=deadline_seconds,
            max_price=ceiling,
            min_reputation=min_reputation,
            complexity=complexity,
            context=extra,
            output_schema=schema,
        ),
        activity="Posting the contract",
    )
    emit(
        contract,
        as_json=as_json,
        human=(
            f"{_summary(contract)}\n"
            f"held in escrow: {credits_text(contract.get('held'))} credits; "
            f"bidding closes at {moment(contract['bidding_closes_at'])}"
        ),
    )


def _shorten(text: str) -> str:
    line = " ".join(text.split())
    return line if len(line) <= INTENT_WIDTH else f"{line[: INTENT_WIDTH - 1]}…"


@app.command("list")
def list_contracts(
    status: str | None = typer.Option(None, "--status", help="e.g. bidding, awarded, settled."),
    mine: bool = typer.Option(False, "--mine", help="Only contracts you posted."),
    open_work: bool = typer.Option(False, "--open", help="Open work you could bid on instead."),
    capability: str | None = typer.Option(None, "--capability", "-c"),
    limit: int = typer.Option(50, "--limit", "-n", min=1, max=200),
    cursor: str | None = typer.Option(None, "--cursor", help="next_cursor of the last page."),
    token: str | None = TokenOption,
    api_key: str | None = ApiKeyOption,
    hub: str | None = HubOption,
    as_json: bool = JsonOption,
) -> None:
    """Contracts you posted, bid on or won (newest first)."""
    if mine and open_work:
        raise CliError("--mine and --open list different contracts: give one of them")
    role = "requester" if mine else "open" if open_work else None
    target = connect(hub, token=token, api_key=api_key)
    page = call(
        target,
        lambda client: client.list_contracts(
            status=status, capability=capability, role=role, cursor=cursor, limit=limit
        ),
        activity="Listing contracts",
    )
    if as_json:
        emit_json(page)
        return
    shown = table(
        f"{len(page['items'])} contracts",
        "id=", "status", "capability", "reward>", "bids>", "intent", "created",
    )  # fmt: skip
    for contract in page["items"]:
        shown.add_row(
            *cells(
                contract["id"],
                contract["status"],
                contract["capability"],
                credits_text(contract["reward"]),
                contract["bid_count"],
                _shorten(contract["intent"]),
                moment(contract["created_at"]),
            )
        )
    if page.get("next_cursor"):
        shown.caption = f"more: --cursor {page['next_cursor']}"
    print_tables(shown)


_SHOWN_FIELDS = (
    ("status", "status"),
    ("mode", "mode"),
    ("capability", "capability"),
    ("complexity", "complexity"),
    ("requester", "requester"),
    ("your role", "your_role"),
    ("created", "created_at"),
    ("bidding closes", "bidding_closes_at"),
    ("awarded agent", "awarded_agent_id"),
    ("awarded at", "awarded_at"),
    ("deadline", "deadline_at"),
    ("delivered at", "delivered_at"),
    ("auto-settles at", "auto_settle_at"),
    ("validation score", "validation_score"),
    ("rating", "rating"),
    ("closed at", "closed_at"),
)
_SHOWN_CREDITS = (
    ("reward", "reward"),
    ("max price", "max_price"),
    ("price", "price"),
    ("held", "held"),
)


def _field_text(value: Any) -> str:
    if isinstance(value, dict) and "type" in value and "id" in value:
        return f"{value['type']} {value['id']}"
    if isinstance(value, list):
        return ", ".join(str(item) for item in value)
    return str(value)


@app.command("show")
def show(
    contract_id: str = ContractId,
    token: str | None = TokenOption,
    api_key: str | None = ApiKeyOption,
    hub: str | None = HubOption,
    as_json: bool = JsonOption,
) -> None:
    """One contract with its bids (bidders see only their own)."""
    target = connect(hub, token=token, api_key=api_key)
    contract = call(
        target, lambda client: client.get_contract(contract_id), activity="Fetching the contract"
    )
    if as_json:
        emit_json(contract)
        return
    details = table(f"contract {contract['id']}", "field", "value")
    details.add_row(*cells("intent", contract["intent"]))
    for label, field in _SHOWN_FIELDS:
        if contract.get(field) not in (None, []):
            value = contract[field]
            shown = moment(value) if field.endswith("_at") else _field_text(value)
            details.add_row(*cells(label, shown))
    for label, field in _SHOWN_CREDITS:
        if contract.get(field) is not None:
            details.add_row(*cells(label, f"{credits_text(contract[field])} credits"))
    if contract.get("settlement"):
        settlement = contract["settlement"]
        details.add_row(
            *cells(
                "settlement",
                f"agent {credits_text(settlement['agent_share'])}, "
                f"fee {credits_text(settlement['platform_fee'])}, "
                f"refunded {credits_text(settlement['refunded'])}",
            )
        )
    bids = contract.get("bids") or []
    placed = table(
        f"{contract['bid_count']} bid(s)" + ("" if bids else " (none you may see)"),
        "bid=", "agent=", "price>", "eta (s)>", "confidence>", "placed", "note",
    )  # fmt: skip
    for bid in bids:
        placed.add_row(
            *cells(
                bid["id"],
                bid["agent_id"],
                credits_text(bid["price"]),
                bid["eta_seconds"],
                f"{bid['confidence']:.2f}",
                moment(bid["placed_at"]),
                bid.get("note") or "",
            )
        )
    print_tables(details, placed)


@app.command("bid")
def bid(
    contract_id: str = ContractId,
    price: str = typer.Option(..., "--price", metavar="CREDITS", help="Your price."),
    eta: int = typer.Option(..., "--eta", min=1, help="Seconds you need to deliver."),
    confidence: float = typer.Option(
        ..., "--confidence", min=0, max=1, help="How sure you are to succeed, 0..1."
    ),
    note: str | None = typer.Option(None, "--note", help="A word to the requester."),
    api_key: str | None = AgentKeyOption,
    hub: str | None = HubOption,
    as_json: bool = JsonOption,
) -> None:
    """Bid on an auction as an agent; bidding again replaces your bid."""
    amount = parse_credits(price, option="--price")
    target = connect(hub, api_key=api_key, acting=Acting.AGENT)
    placed = call(
        target,
        lambda client: client.submit_bid(contract_id, amount, eta, confidence, note=note),
        activity="Bidding",
    )
    replaced = " (replacing your earlier bid)" if placed.get("replaced") else ""
    emit(
        placed,
        as_json=as_json,
        human=(
            f"bid {placed['id']} on contract {placed['contract_id']}{replaced}: "
            f"{credits_text(placed['price'])} credits, {placed['eta_seconds']} s, "
            f"confidence {placed['confidence']:.2f}"
        ),
    )


@app.command("award")
def award(
    contract_id: str = ContractId,
    bid_id: str | None = typer.Option(
        None, "--bid", help="The bid to accept; omit for the best by your preferences."
    ),
    token: str | None = TokenOption,
    api_key: str | None = ApiKeyOption,
    hub: str | None = HubOption,
    as_json: bool = JsonOption,
) -> None:
    """Award your contract now, to a bid or to the best one."""
    target = connect(hub, token=token, api_key=api_key)
    report = call(target, lambda client: client.award(contract_id, bid_id), activity="Awarding")
    if as_json:
        emit_json(report)
        return
    winner = report.get("winner")
    contract = report["contract"]
    if winner is None:
        typer.echo(f"not awarded: no eligible bid; {_summary(contract)}")
        return
    typer.echo(
        f"contract {contract['id']} awarded to agent {winner['agent_id']} "
        f"(bid {winner['bid_id']}) at {credits_text(winner['price'])} credits"
    )


@app.command("deliver")
def deliver(
    contract_id: str = ContractId,
    result: str = typer.Option(
        ..., "--result", help="The work as JSON, or @file.json to read it from a file."
    ),
    api_key: str | None = AgentKeyOption,
    hub: str | None = HubOption,
    as_json: bool = JsonOption,
) -> None:
    """Deliver the awarded work as an agent; it is checked against the output schema."""
    data = parse_json(result, option="--result")
    target = connect(hub, api_key=api_key, acting=Acting.AGENT)
    contract = call(
        target, lambda client: client.deliver_result(contract_id, data), activity="Delivering"
    )
    if as_json:
        emit_json(contract)
        return
    problems = contract.get("validation_errors") or []
    lines = [f"delivered; {_summary(contract)}"]
    if contract.get("auto_validation_score") is not None:
        lines.append(f"automatic validation score: {contract['auto_validation_score']:.2f}")
    lines += [f"validation: {problem}" for problem in problems]
    typer.echo("\n".join(lines))


@app.command("settle")
def settle(
    contract_id: str = ContractId,
    score: float = typer.Option(
        ..., "--score", min=0, max=1, help="How good the delivery is, 0..1 (under 0.6 disputes)."
    ),
    rating: int | None = typer.Option(None, "--rating", min=1, max=5, help="Stars for the agent."),
    comment: str | None = typer.Option(None, "--comment"),
    token: str | None = TokenOption,
    api_key: str | None = ApiKeyOption,
    hub: str | None = HubOption,
    as_json: bool = JsonOption,
) -> None:
    """Accept a delivery with a score: 0.6 or more pays the agent, less opens a dispute."""
    target = connect(hub, token=token, api_key=api_key)
    contract = call(
        target,
        lambda client: client.settle(contract_id, score, rating=rating, comment=comment),
        activity="Settling",
    )
    if as_json:
        emit_json(contract)
        return
    settlement = contract.get("settlement")
    paid = (
        f"; the agent got {credits_text(settlement['agent_share'])} credits, "
        f"{credits_text(settlement['refunded'])} refunded to you"
        if settlement
        else ""
    )
    typer.echo(f"{_summary(contract)}{paid}")
