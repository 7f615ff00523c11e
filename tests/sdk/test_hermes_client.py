"""HermesClient against the real app (both backends), plus the parts only a fake can reach."""

from __future__ import annotations

import asyncio
import inspect
import json
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx
import pytest

from hermes_hub.sdk import (
    AgentUnavailable,
    ApprovalRequired,
    AuthenticationError,
    Conflict,
    HermesClient,
    HermesError,
    HubUnavailable,
    InsufficientFunds,
    NotFound,
    PermissionDenied,
    RateLimited,
    SyncHermesClient,
    ValidationFailed,
    error_from_response,
)
from hermes_hub.sdk.hermes import credits
from tests.events.conftest import serve
from tests.factories import PASSWORD
from tests.sdk.conftest import BASE_URL, enroll, fund, sign_up

# ---- against the app ----


async def test_register_login_me_and_enroll(connect):
    owner = await sign_up(connect)
    me = await owner.hub.me()
    assert me["id"] == owner.id
    assert me["role"] == "user"

    agent = await enroll(connect, owner, price=Decimal("2.50"), description="Summaries.")
    profile = await agent.hub.me()
    assert profile["id"] == agent.id
    assert profile["pricing"]["base_price"] == 2.5
    assert profile["capabilities"] == ["summarize"]
    assert (await owner.hub.get_agent(agent.id))["name"] == profile["name"]


async def test_login_with_a_wrong_password_is_an_authentication_error(connect):
    owner = await sign_up(connect)
    email = (await owner.hub.me())["email"]
    with pytest.raises(AuthenticationError) as caught:
        await connect().login(email, PASSWORD + "!")
    assert caught.value.status == 401


async def test_auction_from_post_to_settlement_moves_the_money(app, client, connect):
    requester = await sign_up(connect)
    await fund(app, client, requester, 100)
    owner = await sign_up(connect)
    first, second = await enroll(connect, owner), await enroll(connect, owner)

    contract = await requester.hub.create_contract(
        "Summarize this report", "summarize", Decimal("5"), bidding_seconds=60
    )
    assert contract["status"] == "bidding"
    assert (await requester.hub.wallet())["held"] == 5

    placed = await first.hub.submit_bid(contract["id"], "4.50", 30, 0.95)
    assert placed["replaced"] is False
    replaced = await first.hub.submit_bid(contract["id"], 4.0, 30, 0.95, note="cheaper")
    assert replaced["replaced"] is True
    assert replaced["price"] == 4
    await second.hub.submit_bid(contract["id"], 3, 60, 0.8)
    assert [c["id"] for c in (await first.hub.list_contracts(role="bidder"))["items"]] == [
        contract["id"]
    ]

    awarded = await requester.hub.award(contract["id"])
    assert awarded["contract"]["status"] == "awarded"
    assert awarded["winner"]["agent_id"] == first.id
    mine = await first.hub.get_my_contracts(status="awarded")
    assert [c["id"] for c in mine["items"]] == [contract["id"]]

    delivered = await first.hub.deliver_result(contract["id"], {"summary": "ok"})
    assert delivered["status"] == "delivered"
    settled = await requester.hub.settle(contract["id"], 1.0, comment="good")
    assert settled["status"] == "settled"
    assert settled["settlement"]["agent_share"] == 3.6
    assert (await requester.hub.get_contract(contract["id"]))["status"] == "settled"

    rating = await requester.hub.rate(first.id, contract["id"], 5, quality=4)
    assert (rating["stars"], rating["quality"]) == (5, 4)

    wallet = await requester.hub.wallet()
    assert (wallet["held"], wallet["available"]) == (0, 96)
    assert (await first.hub.wallet())["available"] == 3.6
    statement = await requester.hub.wallet_transactions(
        limit=10, since=datetime.now(UTC) - timedelta(hours=1)
    )
    assert statement["items"]
    assert all(item["kind"] for item in statement["items"])


async def test_claim_mode_first_claim_wins(app, client, connect):
    requester = await sign_up(connect)
    await fund(app, client, requester, 20)
    owner = await sign_up(connect)
    first, second = await enroll(connect, owner), await enroll(connect, owner)
    contract = await requester.hub.create_contract(
        "Summarize this", "summarize", 5, mode="claim", idempotency_key="claim-contract-1"
    )
    # The same idempotency key replays the first answer: no second contract, no second hold.
    again = await requester.hub.create_contract(
        "Summarize this", "summarize", 5, mode="claim", idempotency_key="claim-contract-1"
    )
    assert again["id"] == contract["id"]
    assert (await requester.hub.wallet())["held"] == 5

    claimed = await first.hub.claim(contract["id"])
    assert claimed["status"] == "claimed"
    assert claimed["awarded_agent_id"] == first.id
    with pytest.raises(Conflict) as caught:
        await second.hub.claim(contract["id"])
    assert caught.value.status == 409


async def test_cancel_refunds_the_hold(app, client, connect):
    requester = await sign_up(connect)
    await fund(app, client, requester, 10)
    contract = await requester.hub.create_contract("Summarize", "summarize", 5)
    cancelled = await requester.hub.cancel_contract(contract["id"])
    assert cancelled["status"] == "cancelled"
    assert (await requester.hub.wallet())["available"] == 10


async def test_problems_become_typed_errors(app, client, connect):
    requester = await sign_up(connect)
    agent = await enroll(connect, await sign_up(connect))

    with pytest.raises(NotFound) as not_found:
        await requester.hub.get_contract(uuid.uuid4())
    assert (not_found.value.status, not_found.value.code) == (404, "contract_not_found")
    assert not_found.value.problem["instance"].startswith("/api/v1/mesh/contracts/")

    with pytest.raises(AuthenticationError) as anonymous:
        await connect().wallet()
    assert anonymous.value.code == "not_authenticated"

    with pytest.raises(AuthenticationError) as unknown_key:
        await connect(api_key="hhk_not_a_key").me()
    assert unknown_key.value.code == "invalid_api_key"

    with pytest.raises(InsufficientFunds) as broke:
        await requester.hub.create_contract("Summarize", "summarize", 1000)
    assert broke.value.code == "insufficient_funds"
    assert isinstance(broke.value, Conflict)

    await fund(app, client, requester, 10)
    contract = await requester.hub.create_contract("Summarize", "summarize", 5)
    with pytest.raises(PermissionDenied) as user_bids:
        await requester.hub.submit_bid(contract["id"], 4, 30, 0.9)
    assert user_bids.value.code == "agent_required"

    with pytest.raises(ValidationFailed) as invalid:
        await agent.hub.submit_bid(contract["id"], 4, 30, 2.0)
    assert invalid.value.status == 422
    assert [error["loc"][-1] for error in invalid.value.errors] == ["confidence"]

    with pytest.raises(NotFound):
        await requester.hub.get_contract(uuid.uuid4())


# ---- error mapping ----


@pytest.mark.parametrize(
    ("status", "problem", "expected", "code"),
    [
        (400, {"code": "invalid_cursor"}, ValidationFailed, "invalid_cursor"),
        (403, {"code": "approval_required"}, ApprovalRequired, "approval_required"),
        (403, {"code": "admin_required"}, PermissionDenied, "admin_required"),
        (409, {"code": "insufficient_funds"}, InsufficientFunds, "insufficient_funds"),
        (502, {"code": "agent_unreachable"}, AgentUnavailable, "agent_unreachable"),
        (504, {"code": "agent_timeout"}, AgentUnavailable, "agent_timeout"),
        # A bare 502 comes from a proxy in front of the hub: the hub is what is down.
        (502, None, HubUnavailable, "http_error"),
        (503, {"code": "database_unavailable"}, HubUnavailable, "database_unavailable"),
        (418, {"code": "teapot"}, HermesError, "teapot"),
    ],
)
def test_error_classes_follow_code_then_status(status, problem, expected, code):
    error = error_from_response(status, problem, reason="Reason")
    assert type(error) is expected
    assert (error.status, error.code) == (status, code)
    assert error.detail == "Reason"


def test_retry_after_comes_from_the_problem_or_the_header():
    limited = error_from_response(
        429, {"code": "rate_limited", "detail": "Slow.", "retry_after": 7}
    )
    assert isinstance(limited, RateLimited)
    assert limited.retry_after == 7
    assert str(limited) == "Slow. (429 rate_limited)"
    busy = error_from_response(503, {"code": "db"}, headers=httpx.Headers({"Retry-After": "5"}))
    assert busy.retry_after == 5


# ---- what only a fake hub can show yet ----


def fake_hub(handler: Any, *, api_key: str | None = "hhk_test") -> HermesClient:
    return HermesClient(BASE_URL, api_key=api_key, transport=httpx.MockTransport(handler))


async def test_an_unreachable_hub_is_hub_unavailable():
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    async with fake_hub(refuse) as hub:
        with pytest.raises(HubUnavailable) as caught:
            await hub.wallet()
    assert (caught.value.status, caught.value.code) == (0, "hub_unreachable")


async def test_execute_agent_posts_the_task_and_returns_the_result():
    seen: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"status": "completed", "result": {"text": "done"}})

    async with fake_hub(answer) as hub:
        result = await hub.execute_agent("agent-b", "Write a haiku", {"style": "terse"})
    assert result["result"] == {"text": "done"}
    [request] = seen
    assert (request.method, request.url.path) == ("POST", "/api/v1/agents/execute")
    assert request.headers["authorization"] == "Bearer hhk_test"
    assert json.loads(request.content) == {
        "agent_id": "agent-b",
        "task": "Write a haiku",
        "context": {"style": "terse"},
    }


async def test_execute_agent_maps_an_unreachable_agent():
    def gateway(request: httpx.Request) -> httpx.Response:
        problem = {"status": 502, "code": "agent_unreachable", "detail": "No answer."}
        return httpx.Response(502, json=problem)

    async with fake_hub(gateway) as hub:
        with pytest.raises(AgentUnavailable) as caught:
            await hub.execute_agent(uuid.uuid4(), "task")
    assert caught.value.code == "agent_unreachable"


SSE_BODY = (
    ": connected\n\n"
    'event: progress\nid: 1\ndata: {"percent": 50}\n\n'
    "data: line one\ndata: line two\n\n"
    'event: result\nid: 2\ndata: {"text":\ndata:  "done"}\n\n'
)


async def test_execute_agent_stream_parses_server_sent_events():
    bodies: list[Any] = []

    def stream(request: httpx.Request) -> httpx.Response:
        bodies.append(json.loads(request.content))
        assert request.headers["accept"] == "text/event-stream"
        return httpx.Response(
            200,
            headers={"content-type": "text/event-stream; charset=utf-8"},
            content=SSE_BODY.encode(),
        )

    async with fake_hub(stream) as hub:
        events = [event async for event in hub.execute_agent_stream("agent-b", "go")]
    assert bodies == [{"agent_id": "agent-b", "task": "go", "stream": True}]
    assert events == [
        {"event": "progress", "data": {"percent": 50}, "id": "1"},
        {"event": "message", "data": "line one\nline two", "id": "1"},
        {"event": "result", "data": {"text": "done"}, "id": "2"},
    ]


async def test_execute_agent_stream_raises_problems_and_wrong_media_types():
    def missing(request: httpx.Request) -> httpx.Response:
        return httpx.Response(404, json={"code": "agent_not_found", "detail": "No such agent."})

    def plain_json(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"status": "completed"})

    async with fake_hub(missing) as hub:
        with pytest.raises(NotFound):
            [event async for event in hub.execute_agent_stream("x", "go")]
    async with fake_hub(plain_json) as hub:
        with pytest.raises(HermesError) as caught:
            [event async for event in hub.execute_agent_stream("x", "go")]
    assert caught.value.code == "unexpected_response"


@pytest.mark.parametrize(
    ("amount", "wire"),
    [(Decimal("4.25"), "4.25"), (0.1, "0.1"), (5, "5"), (" 3.50 ", "3.50")],
)
def test_amounts_go_out_as_exact_decimal_strings(amount, wire):
    assert credits(amount) == wire


@pytest.mark.parametrize("amount", ["abc", "NaN", float("inf")])
def test_amounts_that_are_not_numbers_are_refused_before_sending(amount):
    with pytest.raises(ValueError, match="credits"):
        credits(amount)


def test_a_client_holds_one_kind_of_credential():
    with pytest.raises(ValueError, match="not both"):
        HermesClient(BASE_URL, token="jwt", api_key="hhk_key")


# ---- the blocking facade ----


def test_the_blocking_facade_has_every_async_method():
    def public_methods(cls: type) -> set[str]:
        return {
            name
            for name, member in inspect.getmembers(cls)
            if not name.startswith("_")
            and (inspect.iscoroutinefunction(member) or inspect.isasyncgenfunction(member))
        } - {"aclose"}

    missing = public_methods(HermesClient) - set(dir(SyncHermesClient))
    assert not missing
    assert "events" in dir(SyncHermesClient)


async def test_the_blocking_facade_from_a_thread_without_a_loop(app, client):
    owner_email = f"sync-{uuid.uuid4().hex[:8]}@example.com"

    def script(base_url: str) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
        with SyncHermesClient(base_url) as hub:
            registered = hub.register(owner_email, PASSWORD)
            hub.login(owner_email, PASSWORD)
            me = hub.me()
            with pytest.raises(NotFound):
                hub.get_contract(uuid.uuid4())
            return registered, me, hub.wallet()

    async with serve(app) as ws_url:
        registered, me, wallet = await asyncio.to_thread(script, ws_url.replace("ws://", "http://"))
    assert me["id"] == registered["id"]
    assert me["email"] == owner_email
    assert wallet["available"] == 0


def test_a_closed_blocking_client_refuses_calls():
    hub = SyncHermesClient(BASE_URL)
    hub.close()
    hub.close()
    with pytest.raises(RuntimeError, match="closed"):
        hub.wallet()
