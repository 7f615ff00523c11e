import pytest

from tests.factories import PASSWORD, assert_problem, enroll, register


@pytest.fixture
def settings_overrides():
    return {
        "rate_limit_register": "5/hour",
        "rate_limit_login": "3/minute",
        "rate_limit_default": "8/minute",
    }


async def test_mass_registration_from_one_ip_is_throttled(client):
    statuses = []
    # Up to 10,000 attempts, but the limiter must stop them long before that.
    for i in range(10_000):
        response = await client.post(
            "/api/v1/auth/register", json={"email": f"bot{i}@example.com", "password": PASSWORD}
        )
        statuses.append(response.status_code)
        if response.status_code == 429:
            break
    assert statuses[:5] == [201] * 5
    assert statuses[-1] == 429
    assert len(statuses) == 6
    problem = assert_problem(response, 429, "rate_limited")
    assert int(response.headers["retry-after"]) >= 1
    assert problem["retry_after"] >= 1


async def test_login_is_limited_per_ip_and_per_account(client, app):
    for i in range(3):
        response = await client.post(
            "/api/v1/auth/login",
            json={"email": f"who{i}@example.com", "password": "wrong password!"},
        )
        assert response.status_code == 401
    response = await client.post(
        "/api/v1/auth/login", json={"email": "who@example.com", "password": "wrong password!"}
    )
    assert_problem(response, 429, "rate_limited")


async def test_authenticated_principal_limit(client):
    owner = await register(client)
    agent = await enroll(client, owner)
    codes = [
        (await client.get("/api/v1/agents/me", headers=agent.headers)).status_code for _ in range(9)
    ]
    assert codes[:8] == [200] * 8
    assert codes[8] == 429
    # Limits are per principal: the owner still has budget.
    assert (await client.get("/api/v1/users/me", headers=owner.headers)).status_code == 200


async def test_failed_token_authentication_is_limited_per_ip(client):
    forged = {"Authorization": "Bearer hhk_" + "B" * 43}
    codes = [(await client.get("/api/v1/agents/me", headers=forged)).status_code for _ in range(4)]
    assert codes == [401, 401, 401, 429]
