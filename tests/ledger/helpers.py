"""Helpers for ledger tests: admins, grants, and the ledger check."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
from fastapi import FastAPI

from hermes_hub.identity.models import User
from hermes_hub.ledger.check import check_ledger
from tests.factories import TestUser, register


async def make_admin(app: FastAPI, client: httpx.AsyncClient) -> TestUser:
    admin = await register(client)
    async with app.state.database.write_sessions.begin() as session:
        user = await session.get(User, uuid.UUID(admin.id))
        assert user is not None
        user.role = "admin"
    return admin


async def grant(
    client: httpx.AsyncClient, admin: TestUser, user: TestUser, amount: Any, reason: str = "test"
) -> dict[str, Any]:
    response = await client.post(
        "/api/v1/admin/ledger/grants",
        json={"user_id": user.id, "amount": amount, "reason": reason},
        headers=admin.headers,
    )
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


async def wallet(client: httpx.AsyncClient, principal: Any) -> dict[str, Any]:
    response = await client.get("/api/v1/wallet", headers=principal.headers)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def assert_ledger_ok(app: FastAPI) -> dict[str, Any]:
    async with app.state.database.read_sessions() as session:
        report = await check_ledger(session)
    assert report.ok, report.violations
    return report.as_dict()
