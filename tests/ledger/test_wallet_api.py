"""Wallets, statements, grants, moves between wallets and amounts on the wire."""

from __future__ import annotations

import csv
import io

import pytest

from tests.factories import assert_problem, enroll, register
from tests.ledger.helpers import assert_ledger_ok, grant, make_admin, wallet


async def test_new_wallet_is_empty_and_reading_it_opens_nothing(client, app):
    user = await register(client)
    body = await wallet(client, user)
    assert body == {
        "currency": "CRD",
        "available": 0.0,
        "held": 0.0,
        "total": 0.0,
        "incoming": 0.0,
        "available_units": 0,
        "held_units": 0,
        "total_units": 0,
    }
    report = await assert_ledger_ok(app)
    assert report["accounts"] == 0


async def test_admin_grant_credits_user_wallet_and_is_audited(client, app):
    admin = await make_admin(app, client)
    user = await register(client)
    body = await grant(client, admin, user, 12.5, reason="welcome bonus")
    assert body["amount"] == 12.5
    assert body["amount_units"] == 1250
    assert body["wallet"]["available"] == 12.5
    assert (await wallet(client, user))["total_units"] == 1250

    audit = (await client.get("/api/v1/admin/ledger/audit", headers=admin.headers)).json()
    entry = audit["items"][0]
    assert entry["action"] == "grant"
    assert entry["actor"] == f"user:{admin.id}"
    assert entry["details"]["reason"] == "welcome bonus"
    assert entry["transfer_ids"] == [body["transfer_id"]]
    assert entry["request_id"]

    report = (await client.get("/api/v1/admin/ledger/check", headers=admin.headers)).json()
    assert report["ok"] is True
    assert report["totals"]["CRD"]["net_posted"] == 0


async def test_grant_by_email_and_non_admins_are_refused(client, app):
    admin = await make_admin(app, client)
    user = await register(client)
    response = await client.post(
        "/api/v1/admin/ledger/grants",
        json={"email": user.email.upper(), "amount": "3", "reason": "by email"},
        headers=admin.headers,
    )
    assert response.status_code == 201, response.text
    response = await client.post(
        "/api/v1/admin/ledger/grants",
        json={"user_id": user.id, "amount": 3, "reason": "self-service"},
        headers=user.headers,
    )
    assert_problem(response, 403, "admin_required")
    response = await client.post(
        "/api/v1/admin/ledger/grants",
        json={"email": "nobody@example.com", "amount": 3, "reason": "ghost"},
        headers=admin.headers,
    )
    assert_problem(response, 404, "user_not_found")
    assert (await wallet(client, user))["total_units"] == 300


@pytest.mark.parametrize(
    "amount",
    [
        -1,
        0,
        "0.00",
        1.001,
        "4.255",
        2**53 + 1,
        10**13,
        "ten",
        "",
        None,
        True,
        [5],
        {"value": 5},
        "NaN",
        "Infinity",
        "1e400",
    ],
)
async def test_bad_amounts_are_422_and_write_nothing(client, app, amount):
    admin = await make_admin(app, client)
    user = await register(client)
    response = await client.post(
        "/api/v1/admin/ledger/grants",
        json={"user_id": user.id, "amount": amount, "reason": "bad amount"},
        headers=admin.headers,
    )
    assert_problem(response, 422, "validation_error")
    report = await assert_ledger_ok(app)
    assert report["transfers"] == 0


@pytest.mark.parametrize(("amount", "units"), [(5, 500), (4.25, 425), ("0.01", 1), ("7.10", 710)])
async def test_amounts_with_two_decimals_are_exact(client, app, amount, units):
    admin = await make_admin(app, client)
    user = await register(client)
    body = await grant(client, admin, user, amount)
    assert body["amount_units"] == units


async def test_moves_between_own_wallets_and_statements(client, app):
    admin = await make_admin(app, client)
    user = await register(client)
    agent = await enroll(client, user)
    await grant(client, admin, user, 20)
    response = await client.post(
        "/api/v1/wallet/transfers",
        json={"amount": 7.5, "destination": f"agent:{agent.id}", "memo": "=cmd|' /C calc'!A0"},
        headers=user.headers,
    )
    assert response.status_code == 201, response.text
    assert (await wallet(client, user))["available_units"] == 1250
    earnings = await client.get("/api/v1/agents/me/earnings", headers=agent.headers)
    assert earnings.json()["available_units"] == 750
    assert (await wallet(client, agent))["available_units"] == 750
    by_owner = await client.get(f"/api/v1/agents/{agent.id}/earnings", headers=user.headers)
    assert by_owner.json()["available_units"] == 750

    statement = (await client.get("/api/v1/wallet/transactions", headers=user.headers)).json()
    assert [(item["kind"], item["direction"]) for item in statement["items"]] == [
        ("internal", "out"),
        ("grant", "in"),
    ]
    assert statement["next_cursor"] is None
    only_grants = await client.get(
        "/api/v1/wallet/transactions", params={"kind": "grant"}, headers=user.headers
    )
    assert [item["kind"] for item in only_grants.json()["items"]] == ["grant"]

    export = await client.get(
        f"/api/v1/agents/{agent.id}/earnings/transactions",
        params={"format": "csv"},
        headers=user.headers,
    )
    assert export.status_code == 200
    assert export.headers["content-type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(export.text)))
    assert rows[0][:3] == ["created_at", "id", "kind"]
    assert rows[1][2] == "internal"
    assert rows[1][6] == "7.50"
    assert rows[1][-1].startswith("'=")  # a formula in a memo stays text in a spreadsheet


async def test_statement_cursor_pages_through_everything(client, app):
    admin = await make_admin(app, client)
    user = await register(client)
    for index in range(5):
        await grant(client, admin, user, index + 1)
    seen = []
    cursor = None
    while True:
        params = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = (
            await client.get("/api/v1/wallet/transactions", params=params, headers=user.headers)
        ).json()
        seen.extend(item["amount_units"] for item in page["items"])
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == [500, 400, 300, 200, 100]
    since = await client.get(
        "/api/v1/wallet/transactions",
        params={"since": "2000-01-01T00:00:00Z", "until": "2000-01-02T00:00:00Z"},
        headers=user.headers,
    )
    assert since.json()["items"] == []
    naive = await client.get(
        "/api/v1/wallet/transactions", params={"since": "2000-01-01T00:00:00"}, headers=user.headers
    )
    assert_problem(naive, 422, "naive_datetime")


async def test_spending_more_than_the_balance_is_409_and_writes_nothing(client, app):
    admin = await make_admin(app, client)
    user = await register(client)
    agent = await enroll(client, user)
    await grant(client, admin, user, 5)
    response = await client.post(
        "/api/v1/wallet/transfers",
        json={"amount": 5.01, "destination": f"agent:{agent.id}"},
        headers=user.headers,
    )
    body = assert_problem(response, 409, "insufficient_funds")
    assert body["available"] == 500
    assert (await wallet(client, user))["available_units"] == 500
    report = await assert_ledger_ok(app)
    assert report["transfers"] == 1


async def test_foreign_wallets_are_404(client, app):
    admin = await make_admin(app, client)
    owner = await register(client)
    stranger = await register(client)
    agent = await enroll(client, owner)
    await grant(client, admin, stranger, 5)
    await grant(client, admin, owner, 5)
    # Neither draining someone else's agent nor paying into it.
    for payload in (
        {"amount": 1, "source": f"agent:{agent.id}", "destination": "wallet"},
        {"amount": 1, "destination": f"agent:{agent.id}"},
    ):
        response = await client.post(
            "/api/v1/wallet/transfers", json=payload, headers=stranger.headers
        )
        assert_problem(response, 404, "agent_not_found")
    for path in (
        f"/api/v1/agents/{agent.id}/earnings",
        f"/api/v1/agents/{agent.id}/earnings/transactions",
    ):
        assert_problem(await client.get(path, headers=stranger.headers), 404, "agent_not_found")
    response = await client.post(
        "/api/v1/wallet/transfers",
        json={"amount": 1, "destination": "agent:not-a-uuid"},
        headers=owner.headers,
    )
    assert_problem(response, 422, "validation_error")
    response = await client.post(
        "/api/v1/wallet/transfers",
        json={"amount": 1, "destination": "wallet"},
        headers=owner.headers,
    )
    assert_problem(response, 422, "invalid_transfer")


async def test_org_wallet_is_for_org_admins(client, app):
    admin = await make_admin(app, client)
    owner = await register(client)
    member = await register(client)
    org = (
        await client.post(
            "/api/v1/orgs", json={"name": "Acme", "slug": "acme-ledger"}, headers=owner.headers
        )
    ).json()
    await client.post(
        f"/api/v1/orgs/{org['id']}/members",
        json={"email": member.email, "role": "member"},
        headers=owner.headers,
    )
    await grant(client, admin, owner, 10)
    response = await client.post(
        "/api/v1/wallet/transfers",
        json={"amount": 4, "destination": f"org:{org['id']}"},
        headers=owner.headers,
    )
    assert response.status_code == 201, response.text
    body = (await client.get(f"/api/v1/orgs/{org['id']}/wallet", headers=owner.headers)).json()
    assert body["available_units"] == 400
    statement = await client.get(
        f"/api/v1/orgs/{org['id']}/wallet/transactions", headers=owner.headers
    )
    assert statement.json()["items"][0]["direction"] == "in"
    assert_problem(
        await client.get(f"/api/v1/orgs/{org['id']}/wallet", headers=member.headers),
        403,
        "org_role_required",
    )
    response = await client.post(
        "/api/v1/wallet/transfers",
        json={"amount": 1, "source": f"org:{org['id']}", "destination": "wallet"},
        headers=member.headers,
    )
    assert_problem(response, 403, "org_role_required")
    stranger = await register(client)
    assert_problem(
        await client.get(f"/api/v1/orgs/{org['id']}/wallet", headers=stranger.headers),
        404,
        "organization_not_found",
    )
    response = await client.post(
        "/api/v1/wallet/transfers",
        json={"amount": 1, "destination": f"org:{org['id']}"},
        headers=stranger.headers,
    )
    assert_problem(response, 404, "organization_not_found")


async def test_idempotency_key_replays_and_conflicts(client, app):
    admin = await make_admin(app, client)
    user = await register(client)
    agent = await enroll(client, user)
    await grant(client, admin, user, 10)
    headers = {**user.headers, "Idempotency-Key": "move-1"}
    payload = {"amount": 3, "destination": f"agent:{agent.id}"}
    first = await client.post("/api/v1/wallet/transfers", json=payload, headers=headers)
    again = await client.post("/api/v1/wallet/transfers", json=payload, headers=headers)
    assert first.status_code == again.status_code == 201
    assert first.json() == again.json()
    assert (await wallet(client, user))["available_units"] == 700
    different = await client.post(
        "/api/v1/wallet/transfers", json={**payload, "amount": 4}, headers=headers
    )
    assert_problem(different, 409, "idempotency_key_reused")
    assert (await wallet(client, user))["available_units"] == 700
    # The same key from another user is a different key.
    other = await register(client)
    response = await client.post(
        "/api/v1/wallet/transfers",
        json={"amount": 1, "destination": "wallet"},
        headers={**other.headers, "Idempotency-Key": "move-1"},
    )
    assert_problem(response, 422, "invalid_transfer")


async def test_precision_hidden_in_a_json_float_is_refused_not_rounded(client, app):
    admin = await make_admin(app, client)
    user = await register(client)
    for raw in ("4.2500000000000001", "4.250", "1e2", "4.25e0"):
        response = await client.post(
            "/api/v1/admin/ledger/grants",
            content=f'{{"user_id": "{user.id}", "amount": {raw}, "reason": "exact"}}',
            headers={**admin.headers, "Content-Type": "application/json"},
        )
        if raw == "4.2500000000000001":
            assert_problem(response, 422, "validation_error")
        else:
            assert response.status_code == 201, (raw, response.text)
    assert (await wallet(client, user))["total_units"] == 425 + 10000 + 425
