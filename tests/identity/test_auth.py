import time
import uuid

import jwt
import pytest
from sqlalchemy import func, select

from hermes_hub.identity.models import User
from tests.conftest import TEST_SECRET
from tests.factories import PASSWORD, assert_problem, login, register


async def test_register_login_and_me(client):
    response = await client.post(
        "/api/v1/auth/register", json={"email": "  Alice@Example.COM ", "password": PASSWORD}
    )
    assert response.status_code == 201, response.text
    created = response.json()
    assert created["email"] == "alice@example.com"
    assert created["role"] == "user"
    assert "password" not in response.text
    assert "hash" not in response.text

    response = await client.post(
        "/api/v1/auth/login", json={"email": "ALICE@example.com", "password": PASSWORD}
    )
    assert response.status_code == 200
    body = response.json()
    assert body["token_type"] == "bearer"
    assert body["expires_in"] == 3600

    me = await client.get(
        "/api/v1/users/me", headers={"Authorization": f"Bearer {body['access_token']}"}
    )
    assert me.status_code == 200
    assert me.json()["id"] == created["id"]


async def test_duplicate_email_is_conflict(client):
    await register(client, "bob@example.com")
    response = await client.post(
        "/api/v1/auth/register", json={"email": "BOB@example.com", "password": PASSWORD}
    )
    assert_problem(response, 409, "email_taken")


@pytest.mark.parametrize(
    ("password", "code"),
    [
        ("short", "password_too_short"),
        ("x" * 257, "password_too_long"),
        ("password1234", "password_too_common"),
        ("qwertyuiopasdfgh", "password_too_common"),
        ("123456789012", "password_too_common"),
    ],
)
async def test_password_policy(client, app, password, code):
    response = await client.post(
        "/api/v1/auth/register", json={"email": "weak@example.com", "password": password}
    )
    assert_problem(response, 400, code)
    async with app.state.database.read_sessions() as session:
        assert await session.scalar(select(func.count()).select_from(User)) == 0


async def test_password_at_both_length_bounds_is_accepted(client):
    longest = "Zq8#" + "correct horse " * 18
    shortest = "vR7!kd9@Lm2$"
    assert (len(longest), len(shortest)) == (256, 12)
    for email, password in (("long@example.com", longest), ("exact@example.com", shortest)):
        user = await register(client, email, password=password)
        assert (await client.get("/api/v1/users/me", headers=user.headers)).status_code == 200


async def test_wrong_password_and_unknown_user_look_the_same(client):
    await register(client, "carol@example.com")
    wrong = await client.post(
        "/api/v1/auth/login", json={"email": "carol@example.com", "password": "not the password!"}
    )
    unknown = await client.post(
        "/api/v1/auth/login", json={"email": "nobody@example.com", "password": PASSWORD}
    )
    first = assert_problem(wrong, 401, "invalid_credentials")
    second = assert_problem(unknown, 401, "invalid_credentials")
    assert first["detail"] == second["detail"]


def _forge(claims: dict, *, key: str = TEST_SECRET, algorithm: str = "HS256") -> str:
    now = int(time.time())
    payload = {
        "sub": str(uuid.uuid4()),
        "role": "admin",
        "iss": "http://testserver",
        "aud": "hermes-hub",
        "iat": now,
        "exp": now + 600,
        **claims,
    }
    return jwt.encode(payload, key, algorithm=algorithm)


async def test_forged_and_expired_tokens_are_rejected(client):
    user = await register(client)
    cases = {
        "expired": _forge({"sub": user.id, "exp": int(time.time()) - 10}),
        "wrong key": _forge(
            {"sub": user.id}, key="another-secret-key-of-sufficient-length-for-any-hmac-algorithm!!"
        ),
        "wrong issuer": _forge({"sub": user.id, "iss": "http://evil.example"}),
        "wrong audience": _forge({"sub": user.id, "aud": "someone-else"}),
        "no exp": jwt.encode(
            {"sub": user.id, "role": "user", "iss": "http://testserver", "aud": "hermes-hub"},
            TEST_SECRET,
            algorithm="HS256",
        ),
        "unknown user": _forge({}),
        "garbage": "not.a.jwt",
        "other algorithm": _forge({"sub": user.id}, algorithm="HS512"),
    }
    for name, token in cases.items():
        response = await client.get(
            "/api/v1/users/me", headers={"Authorization": f"Bearer {token}"}
        )
        assert response.status_code == 401, name
        assert response.json()["code"] == "invalid_token", name
        assert response.headers["www-authenticate"] == "Bearer"


async def test_alg_none_token_is_rejected(client):
    user = await register(client)
    header = jwt.utils.base64url_encode(b'{"alg":"none","typ":"JWT"}').decode()
    now = int(time.time())
    claims = (
        f'{{"sub":"{user.id}","role":"admin","iss":"http://testserver",'
        f'"aud":"hermes-hub","iat":{now},"exp":{now + 600}}}'
    )
    payload = jwt.utils.base64url_encode(claims.encode()).decode()
    response = await client.get(
        "/api/v1/users/me", headers={"Authorization": f"Bearer {header}.{payload}."}
    )
    assert_problem(response, 401, "invalid_token")


async def test_missing_or_malformed_authorization(client):
    assert_problem(await client.get("/api/v1/users/me"), 401, "not_authenticated")
    response = await client.get("/api/v1/users/me", headers={"Authorization": "Basic abc"})
    assert_problem(response, 401, "not_authenticated")


async def test_deactivated_user_loses_access(client, app):
    user = await register(client)
    async with app.state.database.write_sessions.begin() as session:
        (await session.get(User, uuid.UUID(user.id))).is_active = False
    assert_problem(await client.get("/api/v1/users/me", headers=user.headers), 401, "invalid_token")
    response = await client.post(
        "/api/v1/auth/login", json={"email": user.email, "password": PASSWORD}
    )
    assert_problem(response, 401, "invalid_credentials")


async def test_agents_cannot_use_user_endpoints(client):
    from tests.factories import enroll

    owner = await register(client)
    agent = await enroll(client, owner)
    response = await client.get("/api/v1/users/me", headers=agent.headers)
    assert_problem(response, 403, "user_required")


async def test_sql_looking_and_unicode_input_is_just_data(client):
    email = "robert'); DROP TABLE users;--@example.com"
    response = await client.post(
        "/api/v1/auth/register", json={"email": email, "password": PASSWORD}
    )
    assert_problem(response, 422, "validation_error")
    user = await register(client, "zoë.ünïcødé@exämple.com")
    assert (await client.get("/api/v1/users/me", headers=user.headers)).status_code == 200
    token = await login(client, "zoë.ünïcødé@exämple.com")
    assert token
    response = await client.post(
        "/api/v1/auth/login",
        json={"email": "' OR 1=1 --", "password": "' OR '1'='1' --"},
    )
    assert_problem(response, 401, "invalid_credentials")
