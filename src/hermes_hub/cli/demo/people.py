"""The demos' people: fresh user accounts on the hub, their credits, and each one's live
event stream sorted by contract."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections import defaultdict
from collections.abc import Collection
from dataclasses import dataclass, field
from decimal import Decimal
from types import TracebackType
from typing import Any, Self

from hermes_hub.cli.output import CliError
from hermes_hub.sdk import HermesClient, HermesError
from hermes_hub.sdk.events import EventStream

EVENT_TIMEOUT_SECONDS = 60.0


@dataclass
class Person:
    name: str
    email: str
    client: HermesClient
    token: str
    user_id: str


async def sign_up(hub_url: str, name: str) -> Person:
    """A new account (a random password: nobody logs in as it after the demo), logged in."""
    email = f"{name.lower()}.{secrets.token_hex(4)}@example.com"
    password = secrets.token_urlsafe(18)
    client = HermesClient(hub_url)
    try:
        await client.register(email, password)
        token = str((await client.login(email, password))["access_token"])
        me = await client.me()
    except BaseException:
        await client.aclose()
        raise
    return Person(name=name, email=email, client=client, token=token, user_id=str(me["id"]))


async def buy_credits(person: Person, amount: Decimal) -> dict[str, Any]:
    """Buy credits with the sandbox's test card, as a developer would on a test hub; returns
    the wallet afterwards."""
    try:
        checkout = await person.client.purchase_credits(amount)
        await person.client.pay_sandbox_checkout(checkout["id"])
    except HermesError as exc:
        if exc.code == "payment_provider_unavailable":
            raise CliError(
                "this hub does not sell test credits (its sandbox payments are off): run the "
                "demo on its own hub (no --hub), or on a development hub"
            ) from exc
        raise
    return await person.client.wallet()


@dataclass
class Inbox:
    """One person's events, kept per contract until asked for. The stream replays from the
    account's first event, so nothing sent before a contract's id was known is missed."""

    client: HermesClient
    _boxes: defaultdict[str, asyncio.Queue[dict[str, Any]]] = field(
        default_factory=lambda: defaultdict(asyncio.Queue)
    )
    _stream: EventStream | None = None
    _reader: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Self:
        self._stream = self.client.events(since=0)
        self._reader = asyncio.create_task(self._read(self._stream))
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._stream is not None:
            await self._stream.aclose()
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, HermesError):
                await self._reader

    async def _read(self, stream: EventStream) -> None:
        async for event in stream:
            data = event.get("data")
            contract_id = data.get("contract_id") if isinstance(data, dict) else None
            if isinstance(contract_id, str):
                self._boxes[contract_id].put_nowait(event)

    async def next(
        self,
        contract_id: str,
        types: Collection[str],
        *,
        within: float = EVENT_TIMEOUT_SECONDS,
    ) -> dict[str, Any]:
        """The contract's next event of one of ``types`` (others are skipped), arriving
        ``within`` seconds."""
        box = self._boxes[contract_id]
        async with asyncio.timeout(within):
            while True:
                if self._reader is not None and self._reader.done():
                    self._reader.result()
                    raise CliError("the hub closed the event stream")
                try:
                    event = await asyncio.wait_for(box.get(), 1.0)
                except TimeoutError:
                    continue
                if event.get("type") in types:
                    return event
