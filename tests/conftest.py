"""Test fixtures: one app per test on SQLite always, and on PostgreSQL + Redis when
``HERMES_TEST_DATABASE_URL`` / ``HERMES_TEST_REDIS_URL`` are set.

Every test that takes ``client`` runs once per backend. Isolation: SQLite tests get a
fresh copy of a migrated template file; PostgreSQL tests share one migrated scratch
database whose tables are truncated before each test.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy.engine import make_url

from hermes_hub.app import create_app
from hermes_hub.config import Settings
from hermes_hub.db import migrate
from hermes_hub.db.registry import Base
from hermes_hub.ledger.check import check_ledger

PG_URL = os.environ.get("HERMES_TEST_DATABASE_URL")
REDIS_URL = os.environ.get("HERMES_TEST_REDIS_URL")
REQUIRE_SERVICES = os.environ.get("HERMES_TEST_REQUIRE_SERVICES") == "1"
TEST_SECRET = "test-secret-key-that-is-long-enough-for-every-hmac-0123456789abcdef"
GENEROUS_LIMIT = "100000/minute"


def libpq_url(url: str, database: str | None = None) -> str:
    parsed = make_url(url).set(drivername="postgresql")
    if database is not None:
        parsed = parsed.set(database=database)
    return parsed.render_as_string(hide_password=False)


@pytest.fixture(scope="session", autouse=True)
def _cheap_argon2() -> Iterator[None]:
    """Argon2id with minimal cost: the same algorithm and checks, a fraction of the CPU.

    Production cost is kept by ``tests/kit/test_pure.py``'s direct checks of the real hasher.
    """
    from argon2 import PasswordHasher

    from hermes_hub.identity import passwords

    real = passwords._hasher
    passwords._hasher = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)
    passwords._dummy_hash.cache_clear()
    yield
    passwords._hasher = real
    passwords._dummy_hash.cache_clear()


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("template") / "template.db"
    migrate.upgrade(f"sqlite+aiosqlite:///{path}")
    return path


async def _postgres_admin(sql: str) -> None:
    assert PG_URL is not None
    connection = await asyncpg.connect(libpq_url(PG_URL))
    try:
        await connection.execute(sql)
    finally:
        await connection.close()


@contextlib.contextmanager
def scratch_postgres_database(prefix: str) -> Iterator[str]:
    """An empty database ``<prefix>_*`` on the test server, dropped afterwards.

    Skips without ``HERMES_TEST_DATABASE_URL``, or fails if CI requires the services.
    """
    if not PG_URL:
        if REQUIRE_SERVICES:
            pytest.fail("HERMES_TEST_REQUIRE_SERVICES=1 but HERMES_TEST_DATABASE_URL is not set")
        pytest.skip("HERMES_TEST_DATABASE_URL not set")
    name = f"{prefix}_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    try:
        asyncio.run(_postgres_admin(f'CREATE DATABASE "{name}"'))
    except (OSError, asyncpg.PostgresError) as exc:
        if REQUIRE_SERVICES:
            pytest.fail(f"PostgreSQL unreachable at {PG_URL}: {exc}")
        pytest.skip(f"PostgreSQL unreachable: {exc}")
    try:
        yield make_url(PG_URL).set(database=name).render_as_string(hide_password=False)
    finally:
        asyncio.run(_postgres_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A scratch PostgreSQL database, migrated once, dropped at the end of the session."""
    with scratch_postgres_database("hermes_test") as url:
        migrate.upgrade(url)
        yield url


def _truncate_postgres(url: str) -> None:
    tables = ", ".join(f'"{table.name}"' for table in Base.metadata.sorted_tables)

    async def run() -> None:
        connection = await asyncpg.connect(libpq_url(url))
        try:
            await connection.execute(f"TRUNCATE {tables} CASCADE")
        finally:
            await connection.close()

    asyncio.run(run())


@pytest.fixture(params=["sqlite", "postgres"])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def database_url(backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if backend == "sqlite":
        template: Path = request.getfixturevalue("sqlite_template")
        target = tmp_path / "hermes.db"
        shutil.copyfile(template, target)
        return f"sqlite+aiosqlite:///{target}"
    url: str = request.getfixturevalue("postgres_url")
    _truncate_postgres(url)
    return url


@pytest.fixture
def redis_url(backend: str) -> str | None:
    if backend == "postgres":
        if not REDIS_URL and REQUIRE_SERVICES:
            pytest.fail("HERMES_TEST_REQUIRE_SERVICES=1 but HERMES_TEST_REDIS_URL is not set")
        return REDIS_URL
    return None


@pytest.fixture
def settings_overrides() -> dict[str, object]:
    """Override in a test module (or parametrize) to change settings for its app."""
    return {}


@pytest.fixture
def settings(
    database_url: str, redis_url: str | None, tmp_path: Path, settings_overrides: dict[str, object]
) -> Settings:
    values: dict[str, object] = {
        "database_url": database_url,
        "redis_url": redis_url,
        "data_dir": tmp_path,
        "secret_key": TEST_SECRET,
        "public_url": "http://testserver",
        "log_level": "warning",
        "rate_limit_key_prefix": f"test-{uuid.uuid4().hex}",
        "rate_limit_default": GENEROUS_LIMIT,
        "rate_limit_login": GENEROUS_LIMIT,
        "rate_limit_register": GENEROUS_LIMIT,
        "rate_limit_enroll": GENEROUS_LIMIT,
        "rate_limit_anonymous": GENEROUS_LIMIT,
        # The nightly trust job would scan and recompute at random points of a test.
        "trust_nightly_enabled": False,
        # Test agents listen on loopback; the SSRF tests turn this off again.
        "allow_private_endpoints": True,
        # Health checks would re-fetch agent cards at random points of a test.
        "a2a_health_interval_seconds": 0,
    }
    values.update(settings_overrides)
    return Settings(**values)  # type: ignore[arg-type]


@pytest.fixture
async def app(settings: Settings) -> AsyncIterator[FastAPI]:
    application = create_app(settings)
    async with application.router.lifespan_context(application):
        yield application
        # Whatever a test did, the money must still add up: every test ends with the
        # equivalent of `hermes ledger check`.
        async with application.state.database.read_sessions() as session:
            report = await check_ledger(session)
        assert report.ok, report.violations


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app, client=("203.0.113.7", 40000))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        yield http
