"""Buying credits through the sandbox provider, its signed webhook, and withdrawals."""

from __future__ import annotations

import json
import time
import uuid

import pytest

from hermes_hub.ledger.payments import SandboxProvider
from tests.factories import assert_problem, enroll, register
from tests.ledger.helpers import assert_ledger_ok, grant, make_admin, wallet

WEBHOOK = "/api/v1/payments/webhook/sandbox"


def _sandbox(app) -> SandboxProvider:
    provider = app.state.payment_providers["sandbox"]
    assert isinstance(provider, SandboxProvider)
    return provider


async def _checkout(client, user, amount=25, **headers):
    response = await client.post(
        "/api/v1/wallet/credits/purchase",
        json={"amount": amount},
        headers={**user.headers, **headers},
    )
    assert response.status_code == 201, response.text
    return response.json()


def _event(checkout, event_type="checkout.completed", event_id=None, amount_units=None):
    return json.dumps(
        {
            "id": event_id or f"evt_{uuid.uuid4().hex}",
            "type": event_type,
            "data": {
                "checkout_id": checkout["id"],
                "amount_units": amount_units or checkout["amount_units"],
                "currency": "CRD",
            },
        }
    ).encode()


def _signed(app, body, timestamp=None):
    return {
        "Hermes-Signature": _sandbox(app).sign(body, int(timestamp or time.time())),
        "Content-Type": "application/json",
    }


async def test_sandbox_checkout_paid_with_test_card_credits_the_wallet(client, app):
    user = await register(client)
    checkout = await _checkout(client, user, amount=25.5)
    assert checkout["status"] == "open"
    assert checkout["amount_units"] == 2550
    assert checkout["checkout_url"].endswith(
        f"/api/v1/payments/sandbox/checkouts/{checkout['id']}/pay"
    )
    assert (await wallet(client, user))["total_units"] == 0

    paid = await client.post(
        f"/api/v1/payments/sandbox/checkouts/{checkout['id']}/pay",
        json={"card_number": "4242 4242 4242 4242"},
        headers=user.headers,
    )
    assert paid.status_code == 200, paid.text
    assert paid.json()["status"] == "completed"
    assert (await wallet(client, user))["available_units"] == 2550
    status = await client.get(
        f"/api/v1/wallet/credits/purchases/{checkout['id']}", headers=user.headers
    )
    assert status.json()["status"] == "completed"
    again = await client.post(
        f"/api/v1/payments/sandbox/checkouts/{checkout['id']}/pay",
        json={"card_number": "4242424242424242"},
        headers=user.headers,
    )
    assert_problem(again, 409, "checkout_closed")
    assert (await wallet(client, user))["available_units"] == 2550
    statement = (await client.get("/api/v1/wallet/transactions", headers=user.headers)).json()
    assert statement["items"][0]["kind"] == "purchase"
    assert statement["items"][0]["reference_id"] == checkout["id"]


async def test_declined_card_fails_the_checkout_and_credits_nothing(client, app):
    user = await register(client)
    checkout = await _checkout(client, user)
    declined = await client.post(
        f"/api/v1/payments/sandbox/checkouts/{checkout['id']}/pay",
        json={"card_number": "4000000000000002"},
        headers=user.headers,
    )
    assert declined.json()["status"] == "failed"
    assert declined.json()["failure_reason"] == "card_declined"
    assert (await wallet(client, user))["total_units"] == 0
    unknown = await client.post(
        f"/api/v1/payments/sandbox/checkouts/{(await _checkout(client, user))['id']}/pay",
        json={"card_number": "5555555555554444"},
        headers=user.headers,
    )
    assert_problem(unknown, 422, "unknown_test_card")


async def test_someone_elses_checkout_is_404(client, app):
    owner = await register(client)
    thief = await register(client)
    checkout = await _checkout(client, owner)
    response = await client.post(
        f"/api/v1/payments/sandbox/checkouts/{checkout['id']}/pay",
        json={"card_number": "4242424242424242"},
        headers=thief.headers,
    )
    assert_problem(response, 404, "checkout_not_found")
    response = await client.get(
        f"/api/v1/wallet/credits/purchases/{checkout['id']}", headers=thief.headers
    )
    assert_problem(response, 404, "checkout_not_found")


async def test_webhook_applies_a_signed_event_exactly_once(client, app):
    user = await register(client)
    checkout = await _checkout(client, user, amount=10)
    body = _event(checkout, event_id="evt_once")
    first = await client.post(WEBHOOK, content=body, headers=_signed(app, body))
    assert first.status_code == 200, first.text
    assert first.json() == {"received": True, "event_id": "evt_once", "outcome": "completed"}
    replay = await client.post(WEBHOOK, content=body, headers=_signed(app, body))
    assert replay.json()["outcome"] == "duplicate"
    # A different event for the same checkout cannot pay twice either.
    other = _event(checkout, event_id="evt_other")
    second = await client.post(WEBHOOK, content=other, headers=_signed(app, other))
    assert second.json()["outcome"] == "already_completed"
    assert (await wallet(client, user))["available_units"] == 1000
    await assert_ledger_ok(app)


async def test_webhook_refuses_bad_signature_old_timestamp_and_bad_events(client, app):
    user = await register(client)
    checkout = await _checkout(client, user, amount=10)
    body = _event(checkout)
    forged = {
        "Hermes-Signature": SandboxProvider(
            secret=b"not the secret", public_url="", tolerance_seconds=300
        ).sign(body, int(time.time()))
    }
    assert_problem(
        await client.post(WEBHOOK, content=body, headers=forged), 400, "invalid_signature"
    )
    assert_problem(await client.post(WEBHOOK, content=body), 400, "invalid_signature")
    assert_problem(
        await client.post(WEBHOOK, content=body, headers={"Hermes-Signature": "t=abc,v1=00"}),
        400,
        "invalid_signature",
    )
    tampered = body.replace(b"1000", b"9999")
    assert_problem(
        await client.post(WEBHOOK, content=tampered, headers=_signed(app, body)),
        400,
        "invalid_signature",
    )
    old = _signed(app, body, timestamp=time.time() - 3600)
    assert_problem(await client.post(WEBHOOK, content=body, headers=old), 400, "signature_expired")
    wrong_amount = _event(checkout, amount_units=5)
    assert_problem(
        await client.post(WEBHOOK, content=wrong_amount, headers=_signed(app, wrong_amount)),
        400,
        "invalid_event",
    )
    garbage = b'{"id": "evt_x"}'
    assert_problem(
        await client.post(WEBHOOK, content=garbage, headers=_signed(app, garbage)),
        400,
        "invalid_event",
    )
    unknown_checkout = _event({**checkout, "id": str(uuid.uuid4())})
    assert_problem(
        await client.post(
            WEBHOOK, content=unknown_checkout, headers=_signed(app, unknown_checkout)
        ),
        400,
        "invalid_event",
    )
    assert_problem(
        await client.post("/api/v1/payments/webhook/stripe", content=body),
        404,
        "payment_provider_unavailable",
    )
    assert (await wallet(client, user))["total_units"] == 0
    # None of the refused deliveries used up the event: a good delivery still works.
    good = await client.post(WEBHOOK, content=body, headers=_signed(app, body))
    assert good.json()["outcome"] == "completed"


async def test_purchase_idempotency_and_limits(client, app):
    user = await register(client)
    first = await _checkout(client, user, 5, **{"Idempotency-Key": "buy-1"})
    again = await _checkout(client, user, 5, **{"Idempotency-Key": "buy-1"})
    assert first["id"] == again["id"]
    response = await client.post(
        "/api/v1/wallet/credits/purchase",
        json={"amount": 6},
        headers={**user.headers, "Idempotency-Key": "buy-1"},
    )
    assert_problem(response, 409, "idempotency_key_reused")
    response = await client.post(
        "/api/v1/wallet/credits/purchase", json={"amount": 10_001}, headers=user.headers
    )
    assert_problem(response, 422, "amount_above_maximum")
    response = await client.post(
        "/api/v1/wallet/credits/purchase",
        json={"amount": 5, "provider": "stripe"},
        headers=user.headers,
    )
    assert_problem(response, 404, "payment_provider_unavailable")


@pytest.mark.parametrize("settings_overrides", [{"sandbox_payments": False}])
async def test_sandbox_can_be_switched_off(client, app):
    user = await register(client)
    response = await client.post(
        "/api/v1/wallet/credits/purchase", json={"amount": 5}, headers=user.headers
    )
    assert_problem(response, 404, "payment_provider_unavailable")
    assert_problem(await client.post(WEBHOOK, content=b"{}"), 404, "payment_provider_unavailable")


# ---- withdrawals ----


async def test_withdrawal_holds_then_admin_approves_or_rejects(client, app):
    admin = await make_admin(app, client)
    owner = await register(client)
    agent = await enroll(client, owner)
    await grant(client, admin, owner, 100)
    await client.post(
        "/api/v1/wallet/transfers",
        json={"amount": 60, "destination": f"agent:{agent.id}"},
        headers=owner.headers,
    )
    request = await client.post(
        "/api/v1/withdrawal/request",
        json={"amount": 50, "source": f"agent:{agent.id}", "destination": "IBAN DE00 1234"},
        headers=owner.headers,
    )
    assert request.status_code == 201, request.text
    withdrawal = request.json()
    assert withdrawal["status"] == "requested"
    earnings = (await client.get("/api/v1/agents/me/earnings", headers=agent.headers)).json()
    assert (earnings["available_units"], earnings["held_units"]) == (1000, 5000)

    pending = await client.get(
        "/api/v1/admin/withdrawals", params={"status": "requested"}, headers=admin.headers
    )
    assert [item["id"] for item in pending.json()["items"]] == [withdrawal["id"]]
    assert_problem(
        await client.post(
            f"/api/v1/admin/withdrawals/{withdrawal['id']}/approve", headers=owner.headers
        ),
        403,
        "admin_required",
    )
    approved = await client.post(
        f"/api/v1/admin/withdrawals/{withdrawal['id']}/approve",
        json={"note": "paid by bank transfer"},
        headers=admin.headers,
    )
    assert approved.json()["status"] == "approved"
    earnings = (await client.get("/api/v1/agents/me/earnings", headers=agent.headers)).json()
    assert (earnings["available_units"], earnings["held_units"], earnings["total_units"]) == (
        1000,
        0,
        1000,
    )
    again = await client.post(
        f"/api/v1/admin/withdrawals/{withdrawal['id']}/reject", headers=admin.headers
    )
    assert_problem(again, 409, "withdrawal_already_resolved")

    second = await client.post(
        "/api/v1/withdrawal/request",
        json={"amount": 20, "destination": "IBAN DE00 1234"},
        headers=owner.headers,
    )
    assert (await wallet(client, owner))["available_units"] == 2000
    rejected = await client.post(
        f"/api/v1/admin/withdrawals/{second.json()['id']}/reject",
        json={"note": "unknown account"},
        headers=admin.headers,
    )
    assert rejected.json()["status"] == "rejected"
    assert (await wallet(client, owner))["available_units"] == 4000
    mine = (await client.get("/api/v1/withdrawals", headers=owner.headers)).json()
    assert {item["status"] for item in mine["items"]} == {"approved", "rejected"}
    await assert_ledger_ok(app)


async def test_withdrawal_limits_and_foreign_sources(client, app):
    admin = await make_admin(app, client)
    owner = await register(client)
    stranger = await register(client)
    agent = await enroll(client, owner)
    await grant(client, admin, owner, 30)
    too_small = await client.post(
        "/api/v1/withdrawal/request",
        json={"amount": 9.99, "destination": "x"},
        headers=owner.headers,
    )
    assert_problem(too_small, 422, "amount_below_minimum")
    too_big = await client.post(
        "/api/v1/withdrawal/request",
        json={"amount": 30.01, "destination": "x"},
        headers=owner.headers,
    )
    assert_problem(too_big, 409, "insufficient_funds")
    foreign = await client.post(
        "/api/v1/withdrawal/request",
        json={"amount": 10, "source": f"agent:{agent.id}", "destination": "x"},
        headers=stranger.headers,
    )
    assert_problem(foreign, 404, "agent_not_found")
    as_agent = await client.post(
        "/api/v1/withdrawal/request",
        json={"amount": 10, "destination": "x"},
        headers=agent.headers,
    )
    assert_problem(as_agent, 403, "user_required")
    missing = await client.post(
        f"/api/v1/admin/withdrawals/{uuid.uuid4()}/approve", headers=admin.headers
    )
    assert_problem(missing, 404, "withdrawal_not_found")
    assert (await wallet(client, owner))["available_units"] == 3000
