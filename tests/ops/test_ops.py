import json

import pytest

from tests.factories import assert_problem, register


async def test_health_and_readiness(client, settings):
    assert (await client.get("/healthz")).json() == {"status": "ok"}
    ready = await client.get("/readyz")
    assert ready.status_code == 200, ready.text
    checks = ready.json()["checks"]
    assert checks["database"]["ok"] is True
    assert ("redis" in checks) == (settings.redis_url is not None)


async def test_readiness_reports_missing_migrations(client, app):
    from sqlalchemy import text

    from hermes_hub.db.migrate import head_revision

    engine = app.state.database.engine
    async with engine.begin() as connection:
        await connection.execute(text("UPDATE alembic_version SET version_num = 'old'"))
    try:
        response = await client.get("/readyz")
        problem = assert_problem(response, 503, "not_ready")
        assert "hermes db upgrade" in problem["detail"]
    finally:
        async with engine.begin() as connection:
            await connection.execute(
                text("UPDATE alembic_version SET version_num = :head"), {"head": head_revision()}
            )


@pytest.mark.parametrize("settings_overrides", [{"redis_url": "redis://127.0.0.1:1/0"}])
async def test_readiness_and_limits_with_redis_down(client):
    response = await client.get("/readyz")
    problem = assert_problem(response, 503, "not_ready")
    assert problem["checks"]["redis"]["ok"] is False
    # The rate limiter cannot count, so requests are refused cleanly rather than let through.
    response = await client.post("/api/v1/auth/login", json={"email": "a@b.co", "password": "x"})
    assert_problem(response, 503, "rate_limiter_unavailable")


async def test_metrics_count_requests_by_route(client):
    user = await register(client)
    await client.get("/api/v1/users/me", headers=user.headers)
    body = (await client.get("/metrics")).text
    assert 'hermes_http_requests_total{method="GET",route="/api/v1/users/me",status="200"}' in body
    assert "hermes_http_request_duration_seconds_bucket" in body
    assert "hermes_db_pool_size" in body


@pytest.mark.parametrize("settings_overrides", [{"metrics_token": "scrape-secret"}])
async def test_metrics_token(client):
    assert_problem(await client.get("/metrics"), 401, "not_authenticated")
    response = await client.get("/metrics", headers={"Authorization": "Bearer scrape-secret"})
    assert response.status_code == 200


async def test_request_id_is_returned_and_logged(client, capsys):
    response = await client.get("/healthz", headers={"X-Request-ID": "abc-123"})
    assert response.headers["x-request-id"] == "abc-123"
    unsafe = await client.get("/healthz", headers={"X-Request-ID": "bad id\nwith newline"})
    assert unsafe.headers["x-request-id"] != "bad id\nwith newline"
    assert len(unsafe.headers["x-request-id"]) == 32


async def test_access_log_is_json_with_request_id(client, capsys, settings_overrides):
    import logging

    from hermes_hub.kit.logging import configure_logging

    configure_logging(level="info", fmt="json")
    try:
        await client.get("/healthz", headers={"X-Request-ID": "trace-me"})
        lines = [
            json.loads(line)
            for line in capsys.readouterr().out.splitlines()
            if line.startswith("{")
        ]
    finally:
        configure_logging(level="warning", fmt="json")
        logging.getLogger().setLevel(logging.WARNING)
    record = next(line for line in lines if line.get("event") == "request")
    assert record["request_id"] == "trace-me"
    assert record["route"] == "/healthz"
    assert record["status"] == 200
    assert isinstance(record["duration_ms"], float)


@pytest.mark.parametrize("settings_overrides", [{"cors_origins": ["https://ui.example.com"]}])
async def test_cors_allow_list(client):
    allowed = await client.options(
        "/api/v1/users/me",
        headers={"Origin": "https://ui.example.com", "Access-Control-Request-Method": "GET"},
    )
    assert allowed.headers["access-control-allow-origin"] == "https://ui.example.com"
    denied = await client.get("/healthz", headers={"Origin": "https://evil.example.com"})
    assert "access-control-allow-origin" not in denied.headers


async def test_no_cors_by_default(client):
    response = await client.get("/healthz", headers={"Origin": "https://ui.example.com"})
    assert "access-control-allow-origin" not in response.headers
