"""Deny by default: every API route needs a principal unless it is on the public list."""

import re

PUBLIC_ROUTES = {
    ("POST", "/api/v1/auth/register"),
    ("POST", "/api/v1/auth/login"),
    ("POST", "/api/v1/agents/enroll/{enrollment_id}/respond"),
    ("GET", "/healthz"),
    ("GET", "/readyz"),
    ("GET", "/metrics"),
    # The public catalogue: anonymous visitors see public agents, rate limited per IP (see
    # tests/discovery).
    ("POST", "/api/v1/agents/discover"),
    ("GET", "/api/v1/marketplace/agents"),
    ("GET", "/api/v1/marketplace/agents/{agent_id}"),
    ("GET", "/api/v1/marketplace/agents/{agent_id}/reviews"),
    ("GET", "/api/v1/marketplace/categories"),
    ("GET", "/api/v1/marketplace/featured"),
    ("POST", "/api/v1/compare"),
    # A2A discovery: agent cards (a private agent's card is 404 without a caller allowed to
    # see it; see tests/a2a) and the hub's AI Catalog of public agents.
    ("GET", "/a2a/agents/{agent_id}/.well-known/agent-card.json"),
    ("GET", "/a2a/agents/{agent_id}/.well-known/agent.json"),
    ("GET", "/.well-known/ai-catalog.json"),
    # Authenticated by the provider's signature instead (see tests/ledger/test_payments.py).
    ("POST", "/api/v1/payments/webhook/{provider_name}"),
}
SAMPLE_ID = "00000000-0000-4000-8000-000000000000"


async def test_every_non_public_route_requires_authentication(client):
    spec = (await client.get("/openapi.json")).json()
    checked = 0
    for path, operations in spec["paths"].items():
        for method in operations:
            if (method.upper(), path) in PUBLIC_ROUTES:
                continue
            concrete = re.sub(r"\{[^}]+\}", SAMPLE_ID, path)
            response = await client.request(method.upper(), concrete, json={})
            assert response.status_code == 401, (method, path, response.status_code)
            assert response.json()["code"] == "not_authenticated"
            checked += 1
    assert checked >= 15


async def test_openapi_has_explicit_unique_operation_ids(client):
    spec = (await client.get("/openapi.json")).json()
    operation_ids = [
        operation["operationId"]
        for path in spec["paths"].values()
        for operation in path.values()
        if isinstance(operation, dict) and "operationId" in operation
    ]
    assert len(operation_ids) == len(set(operation_ids))
    assert all(re.fullmatch(r"[a-z][a-z_]+", op) for op in operation_ids), operation_ids
    assert "start_agent_enrollment" in operation_ids
    assert (await client.get("/docs")).status_code == 200
