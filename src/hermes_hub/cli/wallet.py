"""``hermes wallet``: your wallet, through the hub's HTTP API."""

from __future__ import annotations

import typer

from hermes_hub.cli.common import ApiKeyOption, HubOption, TokenOption, call
from hermes_hub.cli.output import (
    JsonOption,
    cells,
    credits_text,
    emit,
    emit_json,
    moment,
    print_tables,
    table,
)
from hermes_hub.cli.session import connect

app = typer.Typer(
    help="Your wallet (or, with an agent's API key, its earnings), through the hub's HTTP API.",
    no_args_is_help=True,
)


@app.command("balance")
def balance(
    token: str | None = TokenOption,
    api_key: str | None = ApiKeyOption,
    hub: str | None = HubOption,
    as_json: bool = JsonOption,
) -> None:
    """Show available, held and total credits."""
    target = connect(hub, token=token, api_key=api_key)
    result = call(target, lambda client: client.wallet(), activity="Fetching the balance")
    currency = result["currency"]
    emit(
        result,
        as_json=as_json,
        human=(
            f"available {result['available']:.2f} {currency}\n"
            f"held      {result['held']:.2f} {currency}\n"
            f"total     {result['total']:.2f} {currency}\n"
            f"incoming  {result['incoming']:.2f} {currency}"
        ),
    )


@app.command("transactions")
def transactions(
    limit: int = typer.Option(20, "--limit", "-n", min=1, max=200),
    kind: list[str] = typer.Option(
        [], "--kind", help="Only these kinds (repeat), e.g. grant, escrow_hold, agent_payment."
    ),
    cursor: str | None = typer.Option(None, "--cursor", help="next_cursor of the last page."),
    token: str | None = TokenOption,
    api_key: str | None = ApiKeyOption,
    hub: str | None = HubOption,
    as_json: bool = JsonOption,
) -> None:
    """Your statement, newest first."""
    target = connect(hub, token=token, api_key=api_key)
    page = call(
        target,
        lambda client: client.wallet_transactions(cursor=cursor, limit=limit, kinds=kind or None),
        activity="Fetching transactions",
    )
    if as_json:
        emit_json(page)
        return
    shown = table(
        f"{len(page['items'])} transactions",
        "when", "kind", "amount>", "status", "counterparty", "reference", "memo",
    )  # fmt: skip
    for line in page["items"]:
        sign = "+" if line["direction"] == "in" else "-"
        reference = (
            f"{line['reference_type']} {line['reference_id']}" if line.get("reference_type") else ""
        )
        shown.add_row(
            *cells(
                moment(line["created_at"]),
                line["kind"],
                f"{sign}{credits_text(line['amount'])} {line['currency']}",
                line["status"],
                line["counterparty_kind"],
                reference,
                line["memo"],
            )
        )
    if page.get("next_cursor"):
        shown.caption = f"more: --cursor {page['next_cursor']}"
    print_tables(shown)
