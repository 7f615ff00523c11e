"""Bad input and faults: problem+json everywhere, never a 500, never a partial write."""

import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine

from hermes_hub.db.session import Database
from hermes_hub.identity.models import User
from tests.factories import PASSWORD, assert_problem, register


async def _user_count(app):
    async with app.state.database.read_sessions() as session:
        return await session.scalar(select(func.count()).select_from(User))


async def test_oversized_body_with_content_length(client, app):
    big = b'{"email": "a@example.com", "password": "' + b"x" * (1024 * 1024) + b'"}'
    response = await client.post(
        "/api/v1/auth/register", content=big, headers={"content-type": "application/json"}
    )
    assert_problem(response, 413, "payload_too_large")
    assert await _user_count(app) == 0


async def test_oversized_body_streamed_without_content_length(client, app):
    async def chunks():
        yield b'{"email": "a@example.com", "password": "'
        for _ in range(20):
            yield b"x" * 65536
        yield b'"}'

    response = await client.post(
        "/api/v1/auth/register", content=chunks(), headers={"content-type": "application/json"}
    )
    assert_problem(response, 413, "payload_too_large")
    assert await _user_count(app) == 0


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b"[]",
        b'{"email": "a@example.com"}',
        b'{"email": "a@example.com", "password": "correct horse battery", "role": "admin"}',
        b'{"email": 5, "password": 7}',
        b"\xff\xfe\x00garbage",
    ],
)
async def test_malformed_payloads_are_422(client, app, body):
    response = await client.post(
        "/api/v1/auth/register", content=body, headers={"content-type": "application/json"}
    )
    problem = assert_problem(response, 422, "validation_error")
    assert problem["errors"]
    assert await _user_count(app) == 0


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/api/v1/auth/login", b'{"email": "a\\u0000@example.com", "password": "x"}'),
        ("/api/v1/auth/register", b'{"email": "a@example.com", "password": "correct\\u0000horse"}'),
        ("/api/v1/auth/login", b'{"email": "a@example.com", "password": NaN}'),
    ],
)
async def test_text_the_database_cannot_store_is_422(client, path, body):
    response = await client.post(path, content=body, headers={"content-type": "application/json"})
    assert_problem(response, 422, "validation_error")


async def test_unknown_route_and_method(client):
    assert_problem(await client.get("/api/v1/nope"), 404, "not_found")
    assert_problem(await client.put("/api/v1/auth/login"), 405, "method_not_allowed")


async def test_database_failure_at_commit_is_503_without_partial_write(client, app, monkeypatch):
    async def failing_commit(self):
        raise OperationalError("COMMIT", {}, ConnectionResetError("server closed the connection"))

    monkeypatch.setattr(AsyncSession, "commit", failing_commit)
    response = await client.post(
        "/api/v1/auth/register", json={"email": "lost@example.com", "password": PASSWORD}
    )
    assert_problem(response, 503, "database_unavailable")
    assert response.headers["retry-after"]
    monkeypatch.undo()
    assert await _user_count(app) == 0
    # The same request succeeds once the database is back.
    await register(client, "lost@example.com")


async def test_database_unreachable_mid_request_is_503(client, app, settings, tmp_path):
    user = await register(client)
    dead_url = (
        f"sqlite+aiosqlite:///{tmp_path}/no-such-dir/hermes.db"
        if settings.is_sqlite
        else "postgresql+asyncpg://postgres@127.0.0.1:1/unreachable"
    )
    original = app.state.database
    dead = Database.from_engine(create_async_engine(dead_url))
    app.state.database = dead
    try:
        assert_problem(
            await client.get("/api/v1/users/me", headers=user.headers), 503, "database_unavailable"
        )
        response = await client.post(
            "/api/v1/auth/register", json={"email": "new@example.com", "password": PASSWORD}
        )
        assert_problem(response, 503, "database_unavailable")
        ready = await client.get("/readyz")
        assert_problem(ready, 503, "not_ready")
        assert ready.json()["checks"]["database"]["ok"] is False
    finally:
        app.state.database = original
        await dead.dispose()
    assert await _user_count(app) == 1
