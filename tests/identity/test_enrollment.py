import base64
import uuid
from datetime import timedelta

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import func, select

from hermes_hub.identity.models import Agent, AgentApiKey, Enrollment
from hermes_hub.kit.time import utcnow
from hermes_hub.sdk.keys import public_key_b64, sign_b64
from tests.factories import assert_problem, enroll, register, start_enrollment


def _nested(depth):
    value = 1
    for _ in range(depth):
        value = [value]
    return value


async def _respond(client, enrollment_id, signature):
    return await client.post(
        f"/api/v1/agents/enroll/{enrollment_id}/respond", json={"signature": signature}
    )


async def _count(app, model):
    async with app.state.database.read_sessions() as session:
        return await session.scalar(select(func.count()).select_from(model))


async def test_enrollment_issues_a_working_hashed_key(client, app):
    owner = await register(client)
    key = Ed25519PrivateKey.generate()
    challenge = await start_enrollment(
        client,
        owner,
        key,
        name="Translator 🤖 Überbot",
        description="Translates\ntext.",
        capabilities=["Translate", "translate", "summarise"],
        endpoint_url="http://127.0.0.1:9/a2a",
        metadata={"model": "x", "nested": {"k": [1, 2]}},
    )
    assert challenge["challenge"].startswith("hermes-enroll:")
    response = await _respond(
        client, challenge["enrollment_id"], sign_b64(key, challenge["challenge"])
    )
    assert response.status_code == 201, response.text
    result = response.json()
    assert result["api_key"].startswith("hhk_")
    assert result["key"]["prefix"] == result["api_key"][:12]
    expires = result["key"]["expires_at"]
    created = result["key"]["created_at"]
    from datetime import datetime

    lifetime = datetime.fromisoformat(expires) - datetime.fromisoformat(created)
    assert lifetime == timedelta(days=90)

    me = await client.get(
        "/api/v1/agents/me", headers={"Authorization": f"Bearer {result['api_key']}"}
    )
    assert me.status_code == 200
    profile = me.json()
    assert profile["name"] == "Translator 🤖 Überbot"
    assert profile["capabilities"] == ["translate", "summarise"]
    assert profile["owner_id"] == owner.id
    assert profile["public_key"] == public_key_b64(key)
    assert profile["metadata"] == {"model": "x", "nested": {"k": [1, 2]}}

    async with app.state.database.read_sessions() as session:
        stored = (await session.scalars(select(AgentApiKey))).one()
    assert result["api_key"] not in (stored.token_hash, stored.prefix)
    assert len(stored.token_hash) == 64


async def test_wrong_key_signature_is_rejected_without_creating_an_agent(client, app):
    owner = await register(client)
    key = Ed25519PrivateKey.generate()
    challenge = await start_enrollment(client, owner, key)
    impostor = Ed25519PrivateKey.generate()
    response = await _respond(
        client, challenge["enrollment_id"], sign_b64(impostor, challenge["challenge"])
    )
    assert_problem(response, 400, "invalid_signature")
    tampered = await _respond(client, challenge["enrollment_id"], sign_b64(key, "something else"))
    assert_problem(tampered, 400, "invalid_signature")
    assert await _count(app, Agent) == 0
    # The rightful key still completes the enrollment afterwards.
    response = await _respond(
        client, challenge["enrollment_id"], sign_b64(key, challenge["challenge"])
    )
    assert response.status_code == 201


async def test_replayed_challenge_is_refused(client, app):
    owner = await register(client)
    key = Ed25519PrivateKey.generate()
    challenge = await start_enrollment(client, owner, key)
    signature = sign_b64(key, challenge["challenge"])
    assert (await _respond(client, challenge["enrollment_id"], signature)).status_code == 201
    assert_problem(
        await _respond(client, challenge["enrollment_id"], signature), 409, "challenge_already_used"
    )
    assert await _count(app, Agent) == 1
    assert await _count(app, AgentApiKey) == 1


async def test_expired_challenge_is_refused(client, app):
    owner = await register(client)
    key = Ed25519PrivateKey.generate()
    challenge = await start_enrollment(client, owner, key)
    async with app.state.database.write_sessions.begin() as session:
        enrollment = await session.get(Enrollment, uuid.UUID(challenge["enrollment_id"]))
        enrollment.expires_at = utcnow() - timedelta(seconds=1)
    response = await _respond(
        client, challenge["enrollment_id"], sign_b64(key, challenge["challenge"])
    )
    assert_problem(response, 409, "challenge_expired")
    assert await _count(app, Agent) == 0


async def test_challenge_expires_after_five_minutes(client):
    owner = await register(client)
    challenge = await start_enrollment(client, owner, Ed25519PrivateKey.generate())
    from datetime import datetime

    remaining = datetime.fromisoformat(challenge["expires_at"]) - utcnow()
    assert timedelta(minutes=4) < remaining <= timedelta(minutes=5)


@pytest.mark.parametrize(
    "public_key",
    [
        "not base64 at all!!",
        base64.b64encode(b"short").decode(),
        base64.b64encode(b"x" * 33).decode(),
        "",
    ],
)
async def test_malformed_public_key(client, public_key):
    owner = await register(client)
    response = await client.post(
        "/api/v1/agents/enroll",
        json={"name": "bad", "public_key": public_key},
        headers=owner.headers,
    )
    assert_problem(response, 400, "invalid_public_key")


@pytest.mark.parametrize("signature", ["%%%", base64.b64encode(b"x" * 10).decode(), ""])
async def test_malformed_signature(client, signature):
    owner = await register(client)
    challenge = await start_enrollment(client, owner, Ed25519PrivateKey.generate())
    assert_problem(
        await _respond(client, challenge["enrollment_id"], signature), 400, "invalid_signature"
    )


async def test_unknown_enrollment_is_404(client):
    response = await _respond(client, uuid.uuid4(), base64.b64encode(b"x" * 64).decode())
    assert_problem(response, 404, "enrollment_not_found")
    response = await client.post(
        "/api/v1/agents/enroll/not-a-uuid/respond", json={"signature": "x"}
    )
    assert_problem(response, 422, "validation_error")


async def test_a_public_key_enrolls_only_once(client):
    owner = await register(client)
    agent = await enroll(client, owner)
    response = await client.post(
        "/api/v1/agents/enroll",
        json={"name": "again", "public_key": public_key_b64(agent.private_key)},
        headers=owner.headers,
    )
    assert_problem(response, 409, "public_key_in_use")


async def test_two_pending_enrollments_of_one_key_yield_one_agent(client, app):
    owner = await register(client)
    key = Ed25519PrivateKey.generate()
    first = await start_enrollment(client, owner, key)
    second = await start_enrollment(client, owner, key)
    assert (
        await _respond(client, first["enrollment_id"], sign_b64(key, first["challenge"]))
    ).status_code == 201
    response = await _respond(client, second["enrollment_id"], sign_b64(key, second["challenge"]))
    assert_problem(response, 409, "public_key_in_use")
    assert await _count(app, Agent) == 1


@pytest.mark.parametrize(
    "fields",
    [
        {"name": ""},
        {"name": "x" * 101},
        {"name": "bad\x00name"},
        {"name": "bell\x07"},
        {"capabilities": ["has space"]},
        {"capabilities": ["x" * 65]},
        {"endpoint_url": "ftp://example.com"},
        {"endpoint_url": "https://user:pw@example.com/"},
        {"endpoint_url": "not a url"},
        {"metadata": {"blob": "x" * 20_000}},
        {"metadata": {"nul": "a\x00b"}},
        {"metadata": {"bad\x00key": 1}},
        {"metadata": {"deep": _nested(40)}},
        {"organization_id": "nope"},
        {"unexpected": True},
    ],
)
async def test_enroll_payload_validation(client, app, fields):
    owner = await register(client)
    payload = {"name": "ok", "public_key": public_key_b64(Ed25519PrivateKey.generate()), **fields}
    response = await client.post("/api/v1/agents/enroll", json=payload, headers=owner.headers)
    assert_problem(response, 422, "validation_error")
    assert await _count(app, Enrollment) == 0


async def test_enroll_into_an_org_requires_managing_it(client):
    owner = await register(client)
    outsider = await register(client)
    org = (
        await client.post(
            "/api/v1/orgs", json={"name": "Acme", "slug": "acme"}, headers=owner.headers
        )
    ).json()
    key = Ed25519PrivateKey.generate()
    response = await client.post(
        "/api/v1/agents/enroll",
        json={"name": "a", "public_key": public_key_b64(key), "organization_id": org["id"]},
        headers=outsider.headers,
    )
    assert_problem(response, 404, "organization_not_found")
    agent = await enroll(client, owner, organization_id=org["id"])
    me = (await client.get("/api/v1/agents/me", headers=agent.headers)).json()
    assert me["organization_id"] == org["id"]


async def test_enrollment_needs_a_user(client):
    owner = await register(client)
    agent = await enroll(client, owner)
    payload = {"name": "child", "public_key": public_key_b64(Ed25519PrivateKey.generate())}
    assert_problem(
        await client.post("/api/v1/agents/enroll", json=payload), 401, "not_authenticated"
    )
    response = await client.post("/api/v1/agents/enroll", json=payload, headers=agent.headers)
    assert_problem(response, 403, "user_required")
