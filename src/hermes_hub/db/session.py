"""Engine and session management.

Each request gets one session that commits once when the handler returns (or rolls back on
error); services only ``flush()``. On SQLite, requests that change state open their
transaction with ``BEGIN IMMEDIATE`` so two writers queue on the busy timeout instead of
failing with "database is locked" when a read transaction tries to upgrade.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

from fastapi import Depends, Request
from sqlalchemy import event
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from hermes_hub.config import Settings

SQLITE_BUSY_TIMEOUT_MS = 15_000
READ_ONLY_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_AFTER_COMMIT = "hermes_after_commit"


def _configure_sqlite(engine: AsyncEngine) -> None:
    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Hand transaction control to SQLAlchemy so the "begin" hook below decides the mode.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(connection: Connection) -> None:
        mode = connection.get_execution_options().get("sqlite_begin", "DEFERRED")
        connection.exec_driver_sql(f"BEGIN {mode}")


def ensure_sqlite_directory(database_url: str) -> None:
    """Create the folder of a SQLite database file, so a first run needs no manual step."""
    parsed = make_url(database_url)
    if parsed.get_backend_name() == "sqlite" and parsed.database and parsed.database != ":memory:":
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)


def create_engine(settings: Settings, *, url: str | None = None) -> AsyncEngine:
    database_url = url or settings.resolved_database_url
    if make_url(database_url).get_backend_name() == "sqlite":
        ensure_sqlite_directory(database_url)
        engine = create_async_engine(
            database_url,
            pool_size=settings.db_pool_size,
            max_overflow=settings.db_max_overflow,
        )
        _configure_sqlite(engine)
        return engine
    return create_async_engine(
        database_url,
        pool_size=settings.db_pool_size,
        max_overflow=settings.db_max_overflow,
        # No pre-ping: it costs round trips on every checkout. Connections are recycled
        # instead, and one that died mid-request fails that request with a 503.
        pool_recycle=1800,
    )


@dataclass(frozen=True)
class Database:
    engine: AsyncEngine
    read_sessions: async_sessionmaker[AsyncSession]
    write_sessions: async_sessionmaker[AsyncSession]
    # SQLite's busy handler retries blocked writers by sleeping, so under contention they
    # are served out of order and the unlucky ones wait seconds. Queueing this process's
    # writers on a lock first makes the wait fair and short. PostgreSQL needs none.
    write_lock: asyncio.Lock | None

    @classmethod
    def from_engine(
        cls, engine: AsyncEngine, *, session_info: dict[str, Any] | None = None
    ) -> Database:
        """``session_info`` is copied into every session's ``info`` (e.g. the event broker)."""
        writer = engine.execution_options(sqlite_begin="IMMEDIATE")
        return cls(
            engine=engine,
            read_sessions=async_sessionmaker(engine, expire_on_commit=False, info=session_info),
            write_sessions=async_sessionmaker(writer, expire_on_commit=False, info=session_info),
            write_lock=asyncio.Lock() if engine.dialect.name == "sqlite" else None,
        )

    @asynccontextmanager
    async def writer(self) -> AsyncIterator[AsyncSession]:
        """A session for a transaction that writes; the caller commits."""
        async with contextlib.AsyncExitStack() as stack:
            if self.write_lock is not None:
                await stack.enter_async_context(self.write_lock)
            yield await stack.enter_async_context(self.write_sessions())

    async def dispose(self) -> None:
        await self.engine.dispose()


def get_database(request: Request) -> Database:
    database: Database = request.app.state.database
    return database


DatabaseDep = Annotated[Database, Depends(get_database)]


def after_commit(session: AsyncSession, callback: Callable[[], None]) -> None:
    """Run ``callback`` once the request's transaction has committed (never on rollback)."""
    session.info.setdefault(_AFTER_COMMIT, []).append(callback)


def run_after_commit(session: AsyncSession) -> None:
    for callback in session.info.pop(_AFTER_COMMIT, []):
        callback()


async def _request_session(request: Request) -> AsyncIterator[AsyncSession]:
    database = get_database(request)
    opener = database.read_sessions() if request.method in READ_ONLY_METHODS else database.writer()
    async with opener as session:
        yield session
        await session.commit()
        run_after_commit(session)


async def _read_only_session(request: Request) -> AsyncIterator[AsyncSession]:
    async with get_database(request).read_sessions() as session:
        yield session


# scope="function": the commit runs before the response is sent, so a failed commit
# reaches the client as an error instead of a 200 for a write that never happened.
DbSession = Annotated[AsyncSession, Depends(_request_session, scope="function")]
# For a POST that only reads (login): no write transaction, no place in the writer queue,
# so slow work such as password hashing never holds up requests that write.
ReadSession = Annotated[AsyncSession, Depends(_read_only_session, scope="function")]


def dialect_name(session: AsyncSession) -> str:
    """``"postgresql"`` or ``"sqlite"``: the backend this session talks to."""
    return session.get_bind().dialect.name
