from tests.factories import enroll, register


async def test_register_enroll_and_call_me(client):
    owner = await register(client)
    agent = await enroll(client, owner, name="Smoke")
    response = await client.get("/api/v1/agents/me", headers=agent.headers)
    assert response.status_code == 200
    assert response.json()["id"] == agent.id
