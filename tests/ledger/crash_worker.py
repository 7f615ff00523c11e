"""Release an escrow hold in this process, optionally freezing in the middle of it.

Run by ``tests/ledger/test_crash.py`` as a separate process, which it then kills with SIGKILL:

    python crash_worker.py DATABASE_URL HOLD_ID AGENT_ID MARKER STAGE

``STAGE`` says where the release stops, inside its still-open transaction:

- ``journal``: right after the journal wrote the new counters and the transfer rows;
- ``audit``: at the very end, after the hold row was updated and the audit row inserted;
- ``none``: nowhere, the release commits (the run "after the restart").

At the stop the worker writes MARKER (JSON: what its own transaction can see, and its
PostgreSQL backend pid) and waits forever. The hooks wrap production functions in this
process only; the hub itself has no test hooks.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import uuid
from pathlib import Path
from typing import Any

from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from hermes_hub.config import Settings
from hermes_hub.db.session import Database, create_engine, dialect_name
from hermes_hub.db.transaction import in_transaction
from hermes_hub.ledger import audit, escrow
from hermes_hub.ledger.journal import TRANSFERS, Journal
from hermes_hub.ledger.models import Hold, TransferPhase

RATES = escrow.FeeRates(platform_fee_bp=1_000, org_share_bp=500)


async def _freeze(session: AsyncSession, hold_id: uuid.UUID, marker: Path, stage: str) -> None:
    """Record what this open transaction has written so far, then never return."""
    hold = await session.get(Hold, hold_id)
    assert hold is not None
    seen: dict[str, Any] = {
        "stage": stage,
        "pid": os.getpid(),
        "hold_status": hold.status,
        "resolutions": await session.scalar(
            select(func.count())
            .select_from(TRANSFERS)
            .where(TRANSFERS.c.pending_id == hold.pending_transfer_id)
        ),
        "transfers": await session.scalar(select(func.count()).select_from(TRANSFERS)),
        "backend_pid": (
            await session.scalar(text("SELECT pg_backend_pid()"))
            if dialect_name(session) == "postgresql"
            else None
        ),
    }
    partial = marker.with_suffix(".partial")
    partial.write_text(json.dumps(seen))
    partial.replace(marker)
    await asyncio.Event().wait()


def _install_stop(hold_id: uuid.UUID, marker: Path, stage: str) -> None:
    if stage == "journal":
        real_flush = Journal.flush

        async def flush_then_freeze(self: Journal) -> Any:
            written = await real_flush(self)
            if any(record.phase == TransferPhase.POST_PENDING.value for record in written):
                await _freeze(self._session, hold_id, marker, stage)
            return written

        Journal.flush = flush_then_freeze  # type: ignore[method-assign]
    elif stage == "audit":
        real_record = audit.record

        async def record_then_freeze(session: AsyncSession, **fields: Any) -> None:
            await real_record(session, **fields)
            if fields.get("action") == "escrow.release":
                await _freeze(session, hold_id, marker, stage)

        audit.record = record_then_freeze
    elif stage != "none":
        raise SystemExit(f"unknown stage {stage!r}")


async def main(url: str, hold_id: uuid.UUID, agent_id: uuid.UUID, marker: Path, stage: str) -> None:
    _install_stop(hold_id, marker, stage)
    database = Database.from_engine(create_engine(Settings(database_url=url)))

    async def work(session: AsyncSession) -> escrow.ReleaseOutcome:
        return await escrow.release(
            session, hold_id=hold_id, score=1.0, payee_agent_id=agent_id, rates=RATES
        )

    try:
        outcome = await in_transaction(database, work)
    finally:
        await database.dispose()
    print(json.dumps({"status": outcome.hold.status, "released": outcome.hold.released}))


if __name__ == "__main__":
    database_url, hold, agent, marker_path, stop_stage = sys.argv[1:6]
    asyncio.run(
        main(database_url, uuid.UUID(hold), uuid.UUID(agent), Path(marker_path), stop_stage)
    )
