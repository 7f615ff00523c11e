"""The single migration tree matches the models and round-trips on each backend."""

import asyncio

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy.ext.asyncio import create_async_engine

from hermes_hub.db import migrate
from hermes_hub.db.registry import Base, include_object


async def test_models_and_migrations_agree(database_url):
    engine = create_async_engine(database_url)
    try:
        async with engine.connect() as connection:
            diff = await connection.run_sync(
                lambda sync: compare_metadata(
                    MigrationContext.configure(
                        sync, opts={"compare_type": True, "include_object": include_object}
                    ),
                    Base.metadata,
                )
            )
    finally:
        await engine.dispose()
    assert diff == []


def test_downgrade_to_base_and_back(database_url):
    migrate.downgrade(database_url, "base")
    assert asyncio.run(_revision(database_url)) is None
    migrate.upgrade(database_url)
    assert asyncio.run(_revision(database_url)) == migrate.head_revision()


async def _revision(database_url):
    engine = create_async_engine(database_url)
    try:
        return await migrate.current_revision(engine)
    finally:
        await engine.dispose()
