"""Plain factory functions that act through the public HTTP API."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

import httpx
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from hermes_hub.sdk.keys import public_key_b64, sign_b64

PASSWORD = "correct horse battery staple"


@dataclass
class TestUser:
    __test__ = False
    id: str
    email: str
    token: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


@dataclass
class TestAgent:
    __test__ = False
    id: str
    api_key: str
    key_id: str
    private_key: Ed25519PrivateKey

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.api_key}"}


async def register(
    client: httpx.AsyncClient, email: str | None = None, password: str = PASSWORD
) -> TestUser:
    email = email or f"user-{uuid.uuid4().hex[:10]}@example.com"
    response = await client.post(
        "/api/v1/auth/register", json={"email": email, "password": password}
    )
    assert response.status_code == 201, response.text
    token = await login(client, email, password)
    return TestUser(id=response.json()["id"], email=response.json()["email"], token=token)


async def login(client: httpx.AsyncClient, email: str, password: str = PASSWORD) -> str:
    response = await client.post("/api/v1/auth/login", json={"email": email, "password": password})
    assert response.status_code == 200, response.text
    return str(response.json()["access_token"])


async def start_enrollment(
    client: httpx.AsyncClient, owner: TestUser, private_key: Ed25519PrivateKey, **fields: Any
) -> dict[str, Any]:
    payload = {"name": "test agent", "public_key": public_key_b64(private_key), **fields}
    response = await client.post("/api/v1/agents/enroll", json=payload, headers=owner.headers)
    assert response.status_code == 201, response.text
    result: dict[str, Any] = response.json()
    return result


async def enroll(client: httpx.AsyncClient, owner: TestUser, **fields: Any) -> TestAgent:
    private_key = Ed25519PrivateKey.generate()
    challenge = await start_enrollment(client, owner, private_key, **fields)
    response = await client.post(
        f"/api/v1/agents/enroll/{challenge['enrollment_id']}/respond",
        json={"signature": sign_b64(private_key, challenge["challenge"])},
    )
    assert response.status_code == 201, response.text
    body = response.json()
    return TestAgent(
        id=body["agent_id"],
        api_key=body["api_key"],
        key_id=body["key"]["id"],
        private_key=private_key,
    )


def assert_problem(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json"), response.headers
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    assert body["code"] == code, body
    assert body["type"].endswith(code)
    assert body["title"]
    assert body["detail"]
    return body
