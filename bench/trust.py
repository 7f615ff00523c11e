"""Trust costs: the recompute inside a settlement, the batch over every agent, the leaderboard.

Drives the real code in this process, on SQLite and on PostgreSQL (scratch databases,
migrated, dropped at the end):

1. **Settle**: agents with 10, 100 and 1,000 prior outcomes. (a) ``trust.service.recompute``
   of one agent, timed alone inside an open write transaction (then rolled back). (b) The
   whole settlement as the API runs it (``mesh.service.settle`` in ``in_transaction``),
   alternately with the real recompute and with it patched to a no-op; the difference is what
   trust adds to a settlement. After each settlement its outcome is deleted again and the
   agent recomputed (untimed), so every run sees the same number of prior outcomes.
2. **Batch**: ``trust.service.recompute_all`` over 10,000 agents with 1,000,000 outcomes
   (100 each), written beforehand by bulk INSERT/COPY (not timed). Seconds, outcomes/s,
   peak RSS, CPU; then 20 agents recomputed one by one must equal the batch exactly.
3. **Leaderboard**: ``GET /api/v1/marketplace/leaderboard`` through the app in-process
   (httpx ``ASGITransport``) over the batch's data: the first (uncached) call, more uncached
   calls (cache emptied before each), then cached calls; p50/p95/p99.

    .venv/bin/python bench/trust.py            # full run, writes bench/results/trust.json
    .venv/bin/python bench/trust.py --quick    # < 1 min smoke run, writes to the temp dir
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import dataclasses
import functools
import io
import os
import pstats
import random
import re
import secrets
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import Table, delete, event, insert, select, text
from sqlalchemy.dialects.sqlite.aiosqlite import dialect as aiosqlite_dialect
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

import _harness as h
import hermes_hub.db.registry  # noqa: F401 - every model, so foreign keys resolve
from hermes_hub.app import create_app
from hermes_hub.config import Settings
from hermes_hub.db import migrate
from hermes_hub.db.base import Base
from hermes_hub.db.session import Database, create_engine
from hermes_hub.db.transaction import in_transaction
from hermes_hub.events.log import user_recipient
from hermes_hub.identity.models import Agent, User
from hermes_hub.kit.time import utcnow
from hermes_hub.ledger import accounts, wallets
from hermes_hub.mesh import service as mesh
from hermes_hub.mesh.models import AgentMetric, Contract
from hermes_hub.trust import formula
from hermes_hub.trust import service as trust
from hermes_hub.trust.models import (
    FlaggedContract,
    RaterWeight,
    Rating,
    TrustBadge,
    TrustDaily,
    TrustFlag,
    TrustScore,
)
from ledger import PgBackendCpu, configure_logs

GOAL_BATCH_SECONDS = 60.0  # recompute_all, PostgreSQL, at the goal's size below
GOAL_BATCH_AGENTS = 10_000
GOAL_BATCH_OUTCOMES = 1_000_000
GOAL_LEADERBOARD_P95_MS = 10.0  # cached
PHASES = ("settle", "batch", "leaderboard")
ACTOR = "system:bench"
SETTLE_CAPABILITY = "bench-trust-settle"
CAPABILITIES = (
    "summarize",
    "translate",
    "classify",
    "extract",
    "code-review",
    "search",
    "transcribe",
    "plan",
)
LEADERBOARD_CAPABILITY = "translate"
REAL_RECOMPUTE = trust.recompute
LOAD_BATCH = 20_000  # outcomes per bulk-insert batch
SETTLE_REWARD_UNITS = 1_000
SETTLE_PRICE_UNITS = 800
HTTP_PATH = "/api/v1/marketplace/leaderboard"
LEADERBOARD_QUERIES = {
    "trust": {"by": "trust"},
    "earnings_month": {"by": "earnings", "period": "month"},
    "trust_capability": {"by": "trust", "capability": LEADERBOARD_CAPABILITY},
}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add = parser.add_argument
    add("--quick", action="store_true", help="a < 1 minute smoke run (small everything)")
    add("--backends", type=h.backends_arg, default=["sqlite", "postgres"], help="[sqlite,postgres]")
    add("--phases", type=phases_arg, default=list(PHASES), help="[settle,batch,leaderboard]")
    add(
        "--prior-outcomes",
        type=h.int_list,
        default=[10, 100, 1000],
        help="prior outcomes of the settling agent, comma-separated [10,100,1000]",
    )
    add("--runs", type=int, default=200, help="timed recompute calls per agent size [200]")
    add(
        "--settle-runs",
        type=int,
        default=200,
        help="timed settlements per variant (with / no-op recompute) per size [200]",
    )
    add("--warmup", type=int, default=10, help="untimed calls before each series [10]")
    add("--agents", type=int, default=GOAL_BATCH_AGENTS, help="agents in the batch [10000]")
    add(
        "--outcomes-per-agent",
        type=int,
        default=GOAL_BATCH_OUTCOMES // GOAL_BATCH_AGENTS,
        help="outcomes of each batch agent [100]",
    )
    add(
        "--sqlite-outcomes-per-agent",
        type=int,
        default=None,
        help="a smaller batch on SQLite only, if the full one is too slow [same as PostgreSQL]",
    )
    add("--chunk-size", type=int, default=500, help="recompute_all's chunk_size [500]")
    add(
        "--batch-repeats",
        type=int,
        default=2,
        help="recompute_all runs: the first inserts every score, later ones update them [2]",
    )
    add("--sample", type=int, default=20, help="agents recomputed one by one vs. the batch [20]")
    add("--leaderboard-calls", type=int, default=500, help="cached calls per query [500]")
    add("--uncached-calls", type=int, default=30, help="uncached calls per query [30]")
    add(
        "--trust-changes-per-s",
        type=float_list,
        default=[1.0, 10.0],
        help="trust changes per second beside the paced by=trust leaderboard; '' skips [1,10]",
    )
    add(
        "--leaderboard-rps",
        type=float,
        default=20.0,
        help="pace of the leaderboard requests while trust changes [20]",
    )
    add(
        "--changing-seconds",
        type=float,
        default=10.0,
        help="seconds of paced leaderboard requests per change rate [10]",
    )
    add("--seed", type=int, default=5, help="random seed of the generated data [5]")
    add("--output", type=Path, default=h.RESULTS_DIR / "trust.json", help="[results/trust.json]")
    args = parser.parse_args(argv)
    if args.quick:
        args.prior_outcomes = [10, 100]
        args.runs, args.settle_runs, args.warmup = 30, 10, 3
        args.agents, args.outcomes_per_agent = 500, 40
        args.batch_repeats, args.sample = 1, 10
        args.leaderboard_calls, args.uncached_calls = 100, 5
        args.trust_changes_per_s, args.changing_seconds = [10.0], 1.0
        if args.output == h.RESULTS_DIR / "trust.json":
            # A smoke run must not overwrite the real results.
            args.output = Path(tempfile.gettempdir()) / "hermes_bench_trust_quick.json"
    if args.runs < 1 or args.settle_runs < 1 or args.agents < 1 or args.outcomes_per_agent < 1:
        parser.error("runs, settle runs, agents and outcomes per agent must be positive")
    return args


def phases_arg(value: str) -> list[str]:
    chosen = [p.strip() for p in value.split(",") if p.strip()]
    if not chosen or set(chosen) - set(PHASES):
        raise argparse.ArgumentTypeError(f"phases are {','.join(PHASES)}, not {value!r}")
    if "leaderboard" in chosen and "batch" not in chosen:
        raise argparse.ArgumentTypeError("the leaderboard phase reads the batch phase's data")
    return chosen


def float_list(value: str) -> list[float]:
    try:
        return [float(v) for v in value.split(",") if v.strip()]
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"comma-separated numbers, not {value!r}") from exc


# ---------------------------------------------------------------- measuring


@dataclass
class MeterReading:
    statements: int = 0
    driver_s: float = 0.0  # inside the driver's execute (sending, waiting, reading rows)
    compiled: int = 0  # statements SQLAlchemy compiled for this call: not cacheable, or a miss
    compile_s: float = 0.0  # SQLAlchemy's own figure for compiling those

    def minus(self, before: MeterReading) -> MeterReading:
        return MeterReading(
            self.statements - before.statements,
            self.driver_s - before.driver_s,
            self.compiled - before.compiled,
            self.compile_s - before.compile_s,
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "statements": self.statements,
            "inside_driver_s": round(self.driver_s, 3),
            "statements_compiled_not_cached": self.compiled,
            "compile_s": round(self.compile_s, 3),
        }


class StatementMeter:
    """Statements sent through an engine, the time inside the driver, and which statements
    SQLAlchemy had to compile (its log's "[no key 0.002s]" / "[generated in 0.002s]")."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.total = MeterReading()
        self._started: list[float] = []
        sync = engine.sync_engine
        event.listen(sync, "before_cursor_execute", self._before)
        event.listen(sync, "after_cursor_execute", self._after)

    def _before(self, *args: Any) -> None:
        context = args[4]
        with contextlib.suppress(Exception):  # a private API: lose the figure, not the run
            stats = context._get_cache_stats()
            if stats.startswith(("no key", "generated in")):
                self.total.compiled += 1
                found = re.search(r"([0-9.]+)s$", stats)
                if found:
                    self.total.compile_s += float(found.group(1))
        self._started.append(time.perf_counter())

    def _after(self, *_: Any) -> None:
        if self._started:
            self.total.driver_s += time.perf_counter() - self._started.pop()
        self.total.statements += 1

    def reading(self) -> MeterReading:
        return dataclasses.replace(self.total)

    def since(self, before: MeterReading) -> MeterReading:
        return self.total.minus(before)


def readings_summary(readings: Sequence[MeterReading]) -> dict[str, Any]:
    """Per-call medians of a series of readings."""
    if not readings:
        return {}
    return {
        "statements": statistics.median(r.statements for r in readings),
        "statements_compiled_not_cached": statistics.median(r.compiled for r in readings),
        "compile_ms": round(1000 * statistics.median(r.compile_s for r in readings), 3),
        "inside_driver_ms": round(1000 * statistics.median(r.driver_s for r in readings), 3),
    }


def rss_kib(field_name: str) -> int | None:
    try:
        status = Path("/proc/self/status").read_text()
    except OSError:
        return None
    found = re.search(rf"^{field_name}:\s+(\d+) kB", status, re.MULTILINE)
    return int(found.group(1)) if found else None


def reset_peak_rss() -> bool:
    """Reset this process's VmHWM (Linux: clear_refs 5), so the next peak is the span's own."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


class RssSampler:
    """Samples RSS every 50 ms: a second opinion where VmHWM cannot be reset."""

    def __init__(self) -> None:
        self.peak = rss_kib("VmRSS") or 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        while not self._stop.wait(0.05):
            self.peak = max(self.peak, rss_kib("VmRSS") or 0)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, rss_kib("VmRSS") or 0)


def mib(kib: int | None) -> float | None:
    return round(kib / 1024, 1) if kib is not None else None


@contextlib.contextmanager
def recompute_disabled() -> Iterator[None]:
    """The settlement without trust: mesh.service calls ``trust.recompute`` by attribute."""

    async def no_op(*_: Any, **__: Any) -> list[trust.Recomputed]:
        return []

    trust.recompute = no_op
    try:
        yield
    finally:
        trust.recompute = REAL_RECOMPUTE


# ---------------------------------------------------------------- databases


@dataclass
class Backend:
    name: str
    url: str
    info: dict[str, Any]

    @property
    def pg_database(self) -> str | None:
        return make_url(self.url).database if self.name == "postgres" else None

    @property
    def sqlite_path(self) -> Path:
        database = make_url(self.url).database
        assert database is not None
        return Path(database)


@contextlib.contextmanager
def migrated(name: str, workdir: Path, label: str) -> Iterator[Backend | None]:
    if name == "sqlite":
        url = f"sqlite+aiosqlite:///{workdir / label / 'hermes.db'}"
        migrate.upgrade(url)
        yield Backend(name, url, {"database": "SQLite file (WAL) in a temporary directory"})
        return
    admin_url = os.environ.get("HERMES_BENCH_DATABASE_URL", h.DEFAULT_PG_URL)
    with h.scratch_postgres(admin_url) as pg:
        if pg is None:
            yield None
            return
        url, version = pg
        migrate.upgrade(url)
        yield Backend(
            name,
            url,
            {
                "database": f"PostgreSQL {version}, scratch database on 127.0.0.1, "
                "default server settings",
                "scratch_database": make_url(url).database,
            },
        )


def bench_settings(backend: Backend, workdir: Path, **extra: Any) -> Settings:
    values: dict[str, Any] = {
        "database_url": backend.url,
        "data_dir": workdir,
        "secret_key": secrets.token_urlsafe(36),
        "log_level": "warning",
        "rate_limit_key_prefix": f"hermes_bench_{secrets.token_hex(4)}",
        "rate_limit_default": h.GENEROUS_LIMIT,
        "rate_limit_login": h.GENEROUS_LIMIT,
        "rate_limit_register": h.GENEROUS_LIMIT,
        "rate_limit_enroll": h.GENEROUS_LIMIT,
        # The nightly job would recompute everything in the background of a measurement.
        "trust_nightly_enabled": False,
        "scheduler_enabled": False,
    }
    values.update(extra)
    return Settings(**values)


class BulkLoader:
    """Rows straight into tables: COPY on PostgreSQL, executemany on SQLite.

    Foreign keys are not checked while loading (the generator makes them consistent):
    SQLite's are off on a plain connection; on PostgreSQL ``session_replication_role =
    replica`` skips the FK triggers when the role may set it.
    """

    def __init__(self, backend: Backend) -> None:
        self.backend = backend
        self._pg: Any = None
        self._sqlite: sqlite3.Connection | None = None
        self._dialect = aiosqlite_dialect()
        self.fk_checks_skipped = False
        self.rows = 0

    async def __aenter__(self) -> BulkLoader:
        if self.backend.name == "postgres":
            import asyncpg  # type: ignore[import-untyped]

            self._pg = await asyncpg.connect(**h._asyncpg_kwargs(self.backend.url))
            try:
                await self._pg.execute("SET session_replication_role = replica")
                self.fk_checks_skipped = True
            except asyncpg.PostgresError:
                pass
        else:
            self._sqlite = sqlite3.connect(self.backend.sqlite_path, isolation_level=None)
            self._sqlite.execute("PRAGMA synchronous=OFF")
            self.fk_checks_skipped = True
        return self

    async def __aexit__(self, *_: object) -> None:
        if self._pg is not None:
            await self._pg.close()
        if self._sqlite is not None:
            self._sqlite.close()

    async def load(
        self, model: type[Base], columns: Sequence[str], rows: list[tuple[Any, ...]]
    ) -> None:
        if not rows:
            return
        table = model.__table__
        assert isinstance(table, Table)
        self.rows += len(rows)
        if self._pg is not None:
            await self._pg.copy_records_to_table(table.name, records=rows, columns=list(columns))
            return
        assert self._sqlite is not None
        processors = [table.c[c].type._cached_bind_processor(self._dialect) for c in columns]
        converted = [
            tuple(
                p(v) if p is not None and v is not None else v
                for p, v in zip(processors, row, strict=True)
            )
            for row in rows
        ]
        names = ", ".join(f'"{c}"' for c in columns)
        marks = ", ".join("?" for _ in columns)
        self._sqlite.execute("BEGIN")
        statement = f'INSERT INTO "{table.name}" ({names}) VALUES ({marks})'  # noqa: S608
        self._sqlite.executemany(statement, converted)
        self._sqlite.execute("COMMIT")

    async def analyze(self) -> None:
        """PostgreSQL's autovacuum would ANALYZE after such a load; do it now, not mid-run."""
        if self._pg is not None:
            await self._pg.execute("VACUUM ANALYZE")


# ---------------------------------------------------------------- generated data


def column_names(names: str) -> tuple[str, ...]:
    return tuple(names.split())


CONTRACT_COLUMNS = column_names(
    "id requester_user_id requester_owner_id payer_account_id intent capability mode "
    "complexity currency reward_units held_units bidding_seconds delivery_window_seconds "
    "status created_at bidding_closes_at awarded_at delivered_at closed_at "
    "awarded_agent_id price_units promised_eta_seconds validation_score settled_by rating"
)
METRIC_COLUMNS = column_names(
    "id agent_id contract_id outcome success validation_score execution_seconds "
    "promised_seconds on_time rating created_at requester_owner_id agent_owner_id "
    "capability earned_units excluded_reason"
)
RATING_COLUMNS = column_names(
    "id contract_id agent_id rater_owner_id rater_ref stars quality speed communication "
    "comment created_at updated_at editable_until"
)


@dataclass
class AgentSpec:
    id: uuid.UUID
    owner_id: uuid.UUID
    created_at: datetime
    capabilities: list[str]


@dataclass
class World:
    """What the generated outcomes refer to: requesters (with wallets) and agents."""

    now: datetime
    requesters: list[uuid.UUID]
    wallets: dict[uuid.UUID, uuid.UUID]
    agents: list[AgentSpec] = field(default_factory=list)
    outcomes: int = 0
    ratings: int = 0
    excluded: int = 0
    contract_ids: list[uuid.UUID] = field(default_factory=list)  # a few, for flags


async def insert_users(database: Database, count: int, label: str) -> list[uuid.UUID]:
    ids = [uuid.uuid4() for _ in range(count)]
    now = utcnow()
    rows = [
        {
            "id": user_id,
            "email": f"{label}-{i}-{user_id.hex[:8]}@example.com",
            "password_hash": "x",  # never used to log in
            "created_at": now,
            "updated_at": now,
        }
        for i, user_id in enumerate(ids)
    ]
    async with database.writer() as session:
        for start in range(0, len(rows), 5000):
            await session.execute(insert(User), rows[start : start + 5000])
        await session.commit()
    return ids


async def insert_agents(
    database: Database,
    owners: Sequence[uuid.UUID],
    count: int,
    now: datetime,
    rng: random.Random,
    capabilities: Sequence[str] | None = None,
) -> list[AgentSpec]:
    specs = []
    rows = []
    for i in range(count):
        caps = list(capabilities) if capabilities else rng.sample(CAPABILITIES, rng.randint(1, 3))
        spec = AgentSpec(
            id=uuid.uuid4(),
            owner_id=owners[i % len(owners)],
            created_at=now - timedelta(days=rng.uniform(30, 730)),
            capabilities=caps,
        )
        specs.append(spec)
        rows.append(
            {
                "id": spec.id,
                "owner_id": spec.owner_id,
                "name": f"bench agent {i}",
                "description": "",
                "public_key": secrets.token_hex(16),
                "capabilities": caps,
                "metadata": {},
                "is_public": capabilities is not None or rng.random() < 0.9,
                "status": "active",
                "created_at": spec.created_at,
                "updated_at": spec.created_at,
            }
        )
    async with database.writer() as session:
        for start in range(0, len(rows), 2000):
            await session.execute(insert(Agent), rows[start : start + 2000])
        await session.commit()
    return specs


async def open_wallets(
    database: Database, users: Sequence[uuid.UUID], grant_units: int | None = None
) -> dict[uuid.UUID, uuid.UUID]:
    found: dict[uuid.UUID, uuid.UUID] = {}
    for start in range(0, len(users), 200):
        chunk = users[start : start + 200]

        async def work(session: AsyncSession, chunk: Sequence[uuid.UUID] = chunk) -> None:
            for user_id in chunk:
                if grant_units:
                    await wallets.grant(
                        session, user_id=user_id, amount=grant_units, reason="bench", actor=ACTOR
                    )
                found[user_id] = await accounts.user_wallet(session, user_id)

        await in_transaction(database, work)
    return found


def outcome_rows(
    world: World, agent: AgentSpec, count: int, rng: random.Random
) -> Iterator[tuple[tuple[Any, ...], tuple[Any, ...], tuple[Any, ...] | None]]:
    """(contract, metric, rating or None) rows of ``count`` finished contracts of one agent.

    Realistic enough for the formula to do all of its work: mostly successes, some late,
    some failures and disputes, 30 % rated, each agent working for 3 to 30 requesters (so
    the requester cap sometimes binds), 1 % excluded as self-dealing, spread over a year.
    """
    now = world.now
    mine = rng.sample(world.requesters, min(len(world.requesters), rng.randint(3, 30)))
    span_days = max(1.0, min(365.0, (now - agent.created_at).total_seconds() / 86400))
    for _ in range(count):
        requester = rng.choice(mine)
        created = now - timedelta(seconds=rng.uniform(60, span_days * 86400))
        roll = rng.random()
        if roll < 0.9:
            outcome, status, success = "settled", "settled", True
            score = round(rng.uniform(0.6, 1.0), 3)
        elif roll < 0.95:
            outcome, status, success, score = "failed", "failed", False, 0.0
        else:
            outcome, status, success = "dispute", "resolved", False
            score = round(rng.uniform(0.0, 0.59), 3)
        promised = rng.choice((300, 600, 1800, 3600))
        execution = promised * rng.uniform(0.2, 1.3) if outcome != "failed" else None
        on_time = success and execution is not None and execution <= promised
        price = rng.randint(1, 20) * 100
        earned = price * 9 // 10 if success else 0
        stars = rng.choice((3, 4, 4, 5, 5, 5)) if success and rng.random() < 0.3 else None
        excluded = "self_dealing" if rng.random() < 0.01 else None
        awarded = created - timedelta(seconds=(execution or promised) + 5)
        contract_id = uuid.uuid4()
        contract = (
            contract_id,
            requester,
            requester,
            world.wallets[requester],
            "bench contract",
            rng.choice(agent.capabilities),
            "auction",
            "simple",
            "CRD",
            price,
            price,
            60,
            promised,
            status,
            awarded - timedelta(seconds=60),
            awarded,
            awarded,
            None if execution is None else awarded + timedelta(seconds=execution),
            created,
            agent.id,
            price,
            promised,
            score,
            user_recipient(requester),
            stars,
        )
        metric = (
            uuid.uuid4(),
            agent.id,
            contract_id,
            outcome,
            success,
            score,
            execution,
            promised,
            on_time,
            stars,
            created,
            requester,
            agent.owner_id,
            contract[5],
            earned,
            excluded,
        )
        rating = None
        if stars is not None:
            rating = (
                uuid.uuid4(),
                contract_id,
                agent.id,
                requester,
                user_recipient(requester),
                stars,
                None,
                None,
                None,
                None,
                created,
                created,
                created + timedelta(days=7),
            )
        world.outcomes += 1
        world.ratings += rating is not None
        world.excluded += excluded is not None
        if len(world.contract_ids) < 200 and rng.random() < 0.001:
            world.contract_ids.append(contract_id)
        yield contract, metric, rating


async def load_outcomes(
    loader: BulkLoader,
    world: World,
    plan: Iterable[tuple[AgentSpec, int]],
    rng: random.Random,
    progress: str | None = None,
) -> None:
    contracts: list[tuple[Any, ...]] = []
    metrics: list[tuple[Any, ...]] = []
    ratings: list[tuple[Any, ...]] = []
    started = time.perf_counter()
    printed = 0

    async def flush() -> None:
        await loader.load(Contract, CONTRACT_COLUMNS, contracts)
        await loader.load(AgentMetric, METRIC_COLUMNS, metrics)
        await loader.load(Rating, RATING_COLUMNS, ratings)
        contracts.clear()
        metrics.clear()
        ratings.clear()

    for agent, count in plan:
        for contract, metric, rating in outcome_rows(world, agent, count, rng):
            contracts.append(contract)
            metrics.append(metric)
            if rating is not None:
                ratings.append(rating)
        if len(metrics) >= LOAD_BATCH:
            await flush()
            if progress and world.outcomes - printed >= 200_000:
                printed = world.outcomes
                rate = world.outcomes / (time.perf_counter() - started)
                print(f"    {progress}: {world.outcomes:,} outcomes loaded ({rate:,.0f}/s)")
    await flush()


async def insert_integrity_rows(database: Database, world: World, rng: random.Random) -> None:
    """Rater weights below 1, open flags holding back a few contracts, one whitewash flag:
    so the outcome query's joins and its flag check have rows to find."""
    now = world.now
    unreliable = world.requesters[: max(1, len(world.requesters) // 20)]
    weights = [
        {
            "rater_owner_id": rater,
            "weight": 0.5,
            "compared_ratings": 20,
            "mean_deviation": 1.5,
            "updated_at": now,
        }
        for rater in unreliable
    ]
    flags = []
    flagged = []
    for i in range(0, len(world.contract_ids), 10):
        flag_id = uuid.uuid4()
        flags.append(
            {
                "id": flag_id,
                "kind": "circular_flow",
                "status": "open",
                "fingerprint": f"bench-{flag_id.hex}",
                "accounts": [],
                "agent_ids": [],
                "detail": {},
                "created_at": now,
                "updated_at": now,
            }
        )
        flagged += [{"flag_id": flag_id, "contract_id": c} for c in world.contract_ids[i : i + 10]]
    if world.agents:
        subject = rng.choice(world.agents).id
        flags.append(
            {
                "id": uuid.uuid4(),
                "kind": trust.FLAG_WHITEWASH,
                "status": "open",
                "fingerprint": f"bench-whitewash-{subject.hex}",
                "subject_agent_id": subject,
                "accounts": [],
                "agent_ids": [str(subject)],
                "detail": {},
                "created_at": now,
                "updated_at": now,
            }
        )
    async with database.writer() as session:
        if weights:
            await session.execute(insert(RaterWeight), weights)
        for row in flags:
            await session.execute(insert(TrustFlag).values(**row))
        if flagged:
            await session.execute(insert(FlaggedContract), flagged)
        await session.commit()


async def table_sizes(engine: AsyncEngine, backend: Backend) -> dict[str, Any]:
    if backend.name == "sqlite":
        path = backend.sqlite_path
        total = sum(p.stat().st_size for p in path.parent.glob(path.name + "*") if p.is_file())
        return {"sqlite_file_mib": round(total / 2**20, 1)}
    sizes = {}
    async with engine.connect() as conn:
        for name in ("mesh_contracts", "mesh_agent_metrics", "trust_ratings", "trust_scores"):
            size = await conn.scalar(text(f"SELECT pg_total_relation_size('{name}')"))
            sizes[f"{name}_mib"] = round(int(size or 0) / 2**20, 1)
    return sizes


# ---------------------------------------------------------------- phase 1: settle


@dataclass
class SettleFixture:
    database: Database
    settings: Settings
    requester: mesh.Party
    meter: StatementMeter
    agents: dict[int, uuid.UUID]  # prior outcomes -> agent


async def settle_fixture(
    backend: Backend, database: Database, settings: Settings, args: argparse.Namespace
) -> SettleFixture:
    rng = random.Random(args.seed)
    now = utcnow()
    requesters = await insert_users(database, 20, "requester")
    owners = await insert_users(database, 1, "owner")
    funding = (len(args.prior_outcomes) * (2 * args.settle_runs + 4 * args.warmup) + 10) * (
        SETTLE_REWARD_UNITS
    )
    world = World(now=now, requesters=requesters, wallets={})
    world.wallets = await open_wallets(database, requesters[:1], grant_units=funding)
    world.wallets |= await open_wallets(database, requesters[1:])
    specs = await insert_agents(
        database, owners, len(args.prior_outcomes), now, rng, capabilities=[SETTLE_CAPABILITY]
    )
    async with BulkLoader(backend) as loader:
        await load_outcomes(loader, world, zip(specs, args.prior_outcomes, strict=True), rng)
        await loader.analyze()
    agents = {size: spec.id for size, spec in zip(args.prior_outcomes, specs, strict=True)}

    async def first_scores(session: AsyncSession) -> None:
        await REAL_RECOMPUTE(session, list(agents.values()), settings=settings, now=utcnow())

    await in_transaction(database, first_scores)
    requester = mesh.Party(user_id=requesters[0], agent_id=None, owner_id=requesters[0])
    return SettleFixture(database, settings, requester, StatementMeter(database.engine), agents)


async def time_recompute(fx: SettleFixture, agent_id: uuid.UUID) -> tuple[float, MeterReading]:
    """One recompute inside an open write transaction (begun before the clock starts)."""
    async with fx.database.writer() as session:
        await session.execute(text("SELECT 1"))
        before = fx.meter.reading()
        started = time.perf_counter()
        await REAL_RECOMPUTE(session, [agent_id], settings=fx.settings, now=utcnow())
        elapsed = time.perf_counter() - started
        used = fx.meter.since(before)
        await session.rollback()
    return elapsed, used


async def delivered_contract(fx: SettleFixture, agent_id: uuid.UUID) -> uuid.UUID:
    """A contract from the requester to the agent, awarded and delivered, ready to settle."""

    async def work(session: AsyncSession) -> uuid.UUID:
        now = utcnow()
        draft = mesh.ContractDraft(
            intent="bench: settle me",
            capability=SETTLE_CAPABILITY,
            reward_units=SETTLE_REWARD_UNITS,
            bidding_seconds=600,
        )
        contract = await mesh.create_contract(
            session, requester=fx.requester, draft=draft, settings=fx.settings, now=now
        )
        agent = await session.get(Agent, agent_id)
        assert agent is not None
        await mesh.place_bid(
            session,
            contract_id=contract.id,
            agent=agent,
            price_units=SETTLE_PRICE_UNITS,
            eta_seconds=600,
            confidence=0.9,
            note=None,
            now=now,
        )
        await mesh.award(session, contract_id=contract.id, now=now, by=fx.requester)
        await mesh.deliver(
            session,
            contract_id=contract.id,
            agent=agent,
            data={"summary": "done"},
            settings=fx.settings,
            now=now,
        )
        return contract.id

    return await in_transaction(fx.database, work)


async def time_settle(fx: SettleFixture, contract_id: uuid.UUID) -> tuple[float, MeterReading]:
    """``settle`` as ``POST .../settle`` runs it: score 0.95 with a 5-star rating."""

    async def work(session: AsyncSession) -> Contract:
        return await mesh.settle(
            session,
            contract_id=contract_id,
            by=fx.requester,
            validation_score=0.95,
            rating=5,
            comment=None,
            settings=fx.settings,
            now=utcnow(),
        )

    before = fx.meter.reading()
    started = time.perf_counter()
    await in_transaction(fx.database, work)
    return time.perf_counter() - started, fx.meter.since(before)


async def forget_outcome(fx: SettleFixture, contract_id: uuid.UUID, agent_id: uuid.UUID) -> None:
    """Take the settlement's outcome (and rating) back out and recompute: the next run
    starts from the same prior outcomes and the same stored score."""

    async def work(session: AsyncSession) -> None:
        await session.execute(delete(AgentMetric).where(AgentMetric.contract_id == contract_id))
        await session.execute(delete(Rating).where(Rating.contract_id == contract_id))
        await REAL_RECOMPUTE(session, [agent_id], settings=fx.settings, now=utcnow())

    await in_transaction(fx.database, work)


async def settle_phase(backend: Backend, workdir: Path, args: argparse.Namespace) -> dict[str, Any]:
    settings = bench_settings(backend, workdir)
    database = Database.from_engine(create_engine(settings))
    try:
        t0 = time.perf_counter()
        fx = await settle_fixture(backend, database, settings, args)
        out: dict[str, Any] = {"setup_s": round(time.perf_counter() - t0, 1), "sizes": {}}
        for size, agent_id in fx.agents.items():
            print(f"  settle: agent with {size} prior outcomes")
            direct: list[float] = []
            direct_meter: list[MeterReading] = []
            for i in range(args.warmup + args.runs):
                elapsed, used = await time_recompute(fx, agent_id)
                if i >= args.warmup:
                    direct.append(elapsed)
                    direct_meter.append(used)

            needed = 2 * (args.warmup + args.settle_runs)
            prepared = [await delivered_contract(fx, agent_id) for _ in range(needed)]
            timings: dict[str, list[float]] = {"with_recompute": [], "recompute_no_op": []}
            counts: dict[str, list[MeterReading]] = {"with_recompute": [], "recompute_no_op": []}
            for i in range(args.warmup + args.settle_runs):
                # Alternate which variant goes first, so drift falls on both alike.
                order = ("with_recompute", "recompute_no_op")
                for variant in order if i % 2 == 0 else order[::-1]:
                    contract_id = prepared.pop()
                    with (
                        recompute_disabled()
                        if variant == "recompute_no_op"
                        else (contextlib.nullcontext())
                    ):
                        elapsed, used = await time_settle(fx, contract_id)
                    await forget_outcome(fx, contract_id, agent_id)
                    if i >= args.warmup:
                        timings[variant].append(elapsed)
                        counts[variant].append(used)
            paired = [
                a - b
                for a, b in zip(timings["with_recompute"], timings["recompute_no_op"], strict=True)
            ]
            with_d = h.dist_ms(timings["with_recompute"])
            without_d = h.dist_ms(timings["recompute_no_op"])
            with_m = readings_summary(counts["with_recompute"])
            without_m = readings_summary(counts["recompute_no_op"])
            entry = {
                "recompute_in_transaction": h.dist_ms(direct) | readings_summary(direct_meter),
                "settle_with_recompute": with_d | with_m,
                "settle_recompute_no_op": without_d | without_m,
                "added_by_recompute": {
                    "p50_ms": _minus(with_d["p50_ms"], without_d["p50_ms"]),
                    "p95_ms": _minus(with_d["p95_ms"], without_d["p95_ms"]),
                    "paired_p50_ms": h.percentile_ms([1000 * d for d in paired], 50),
                    "paired_p95_ms": h.percentile_ms([1000 * d for d in paired], 95),
                    "statements": with_m["statements"] - without_m["statements"],
                },
            }
            out["sizes"][str(size)] = entry
            print(
                f"    recompute p50 {entry['recompute_in_transaction']['p50_ms']} "
                f"p95 {entry['recompute_in_transaction']['p95_ms']} ms; settle "
                f"p50 {with_d['p50_ms']} vs {without_d['p50_ms']} ms without "
                f"(+{entry['added_by_recompute']['p50_ms']}), p95 {with_d['p95_ms']} vs "
                f"{without_d['p95_ms']} (+{entry['added_by_recompute']['p95_ms']})"
            )
        return out
    finally:
        await database.dispose()


def _minus(a: float | None, b: float | None) -> float | None:
    return round(a - b, 3) if a is not None and b is not None else None


# ---------------------------------------------------------------- phase 2: batch


SCORE_FIELDS = tuple(c.name for c in TrustScore.__table__.columns)


async def stored_state(
    session: AsyncSession, agent_id: uuid.UUID
) -> tuple[dict[str, Any] | None, set[str], list[tuple[Any, ...]]]:
    row = (
        (await session.execute(select(TrustScore.__table__).where(TrustScore.agent_id == agent_id)))
        .mappings()
        .first()
    )
    badges = set(
        await session.scalars(select(TrustBadge.badge).where(TrustBadge.agent_id == agent_id))
    )
    daily = [
        tuple(r)
        for r in await session.execute(
            select(TrustDaily.day, TrustDaily.trust, TrustDaily.grade, TrustDaily.counted_outcomes)
            .where(TrustDaily.agent_id == agent_id)
            .order_by(TrustDaily.day)
        )
    ]
    return (dict(row) if row is not None else None), badges, daily


async def check_sample(
    database: Database, settings: Settings, agent_ids: Sequence[uuid.UUID], now: datetime
) -> dict[str, Any]:
    """Each agent recomputed alone (``recompute``, same ``now``) must store exactly what the
    batch stored: every trust_scores column, the badges and the day's snapshot."""
    mismatches = []
    for agent_id in agent_ids:
        async with database.writer() as session:
            batch = await stored_state(session, agent_id)
            changes = await REAL_RECOMPUTE(session, [agent_id], settings=settings, now=now)
            alone = await stored_state(session, agent_id)
            await session.rollback()
        differs = [
            name
            for name in SCORE_FIELDS
            if batch[0] is None or alone[0] is None or batch[0][name] != alone[0][name]
        ]
        if batch[1] != alone[1]:
            differs.append("badges")
        if batch[2] != alone[2]:
            differs.append("trust_daily")
        if changes and batch[0] is not None and changes[0].result.trust != batch[0]["trust"]:
            differs.append("returned_trust")
        if differs:
            mismatches.append({"agent_id": str(agent_id), "fields": differs})
    return {
        "agents": len(agent_ids),
        "exactly_equal": not mismatches,
        "compared": "every trust_scores column (trust, raw, breakdown JSON, counts, ...), "
        "the badges and the trust_daily rows",
        "mismatches": mismatches,
    }


class PhaseClock:
    """Wall time, and the driver's part of it, spent inside chosen steps of ``recompute``.

    The steps do not call one another, so their times add up; what is left of a recompute
    is its other queries (agents, totals, badges) and the loop around the formula.
    """

    TARGETS = (
        (trust, "_lock_scores"),
        (trust, "counted_outcomes"),
        (trust, "agents_on_probation"),
        (formula, "compute"),
        (formula, "badges_for"),
        (trust, "_score_values"),
        (trust, "_store"),
    )

    def __init__(self, meter: StatementMeter) -> None:
        self.meter = meter
        self.wall: dict[str, float] = defaultdict(float)
        self.driver: dict[str, float] = defaultdict(float)
        self._saved: list[tuple[Any, str, Any]] = []

    def __enter__(self) -> PhaseClock:
        for module, name in self.TARGETS:
            original = getattr(module, name)
            self._saved.append((module, name, original))
            label = f"{module.__name__.rsplit('.', 1)[1]}.{name}"
            wrapper = (
                self._async(label, original)
                if asyncio.iscoroutinefunction(original)
                else self._sync(label, original)
            )
            setattr(module, name, wrapper)
        return self

    def __exit__(self, *_: object) -> None:
        for module, name, original in self._saved:
            setattr(module, name, original)

    def _async(self, label: str, fn: Callable[..., Awaitable[Any]]) -> Callable[..., Any]:
        @functools.wraps(fn)
        async def timed(*a: Any, **k: Any) -> Any:
            driver = self.meter.total.driver_s
            started = time.perf_counter()
            try:
                return await fn(*a, **k)
            finally:
                self.wall[label] += time.perf_counter() - started
                self.driver[label] += self.meter.total.driver_s - driver

        return timed

    def _sync(self, label: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(fn)
        def timed(*a: Any, **k: Any) -> Any:
            started = time.perf_counter()
            try:
                return fn(*a, **k)
            finally:
                self.wall[label] += time.perf_counter() - started

        return timed


async def where_time_goes(
    database: Database,
    settings: Settings,
    meter: StatementMeter,
    agent_ids: Sequence[uuid.UUID],
    chunk_size: int,
    now: datetime,
) -> dict[str, Any]:
    """Chunks recomputed as recompute_all does (each rolled back), unprofiled, with the
    wall time of each step of ``recompute`` and the part of it spent in the driver."""
    wall = 0.0
    cpu = time.process_time()
    before = meter.reading()
    with PhaseClock(meter) as clock:
        for start in range(0, len(agent_ids), chunk_size):
            async with database.writer() as session:
                await session.execute(text("SELECT 1"))
                started = time.perf_counter()
                await trust.recompute(
                    session, list(agent_ids[start : start + chunk_size]), settings=settings, now=now
                )
                wall += time.perf_counter() - started
                await session.rollback()
    cpu = time.process_time() - cpu
    steps = {
        label: {
            "wall_s": round(seconds, 3),
            "share": round(seconds / wall, 3),
            "inside_driver_s": round(clock.driver[label], 3),
        }
        for label, seconds in sorted(clock.wall.items(), key=lambda item: -item[1])
    }
    rest = wall - sum(clock.wall.values())
    steps["rest of recompute (agents/totals/badges queries, loop)"] = {
        "wall_s": round(rest, 3),
        "share": round(rest / wall, 3),
    }
    return {
        "agents": len(agent_ids),
        "chunk_size": chunk_size,
        "wall_s": round(wall, 3),
        "process_cpu_s": round(cpu, 3),
        **meter.since(before).as_dict(),
        "steps": steps,
        "note": "_score_values includes formula.breakdown (the stored JSON)",
    }


async def profile_chunk(
    database: Database,
    settings: Settings,
    agent_ids: Sequence[uuid.UUID],
    now: datetime,
) -> dict[str, Any]:
    """cProfile of one chunk's recompute (rolled back): the functions with most own time."""
    async with database.writer() as session:
        await session.execute(text("SELECT 1"))
        profiler = cProfile.Profile()
        started = time.perf_counter()
        profiler.enable()
        await trust.recompute(session, list(agent_ids), settings=settings, now=now)
        profiler.disable()
        wall = time.perf_counter() - started
        await session.rollback()
    stats = pstats.Stats(profiler, stream=io.StringIO())
    top = []
    for (filename, line, name), (_cc, calls, tottime, cumtime, _callers) in sorted(
        stats.stats.items(),  # type: ignore[attr-defined]
        key=lambda item: item[1][2],
        reverse=True,
    )[:25]:
        where = filename.split("site-packages/")[-1].split("/src/")[-1]
        top.append(
            {
                "function": f"{where}:{line}({name})",
                "calls": calls,
                "tottime_s": round(tottime, 4),
                "cumtime_s": round(cumtime, 4),
            }
        )
    return {
        "agents": len(agent_ids),
        "wall_s_profiled": round(wall, 3),
        "top_by_own_time": top,
        "note": "on SQLite the driver runs in aiosqlite's thread, which cProfile does not see",
    }


async def batch_world(
    backend: Backend,
    database: Database,
    args: argparse.Namespace,
    outcomes_per_agent: int,
) -> tuple[World, dict[str, Any]]:
    rng = random.Random(args.seed)
    now = utcnow()
    started = time.perf_counter()
    owners = await insert_users(database, max(1, args.agents // 5), "owner")
    requesters = await insert_users(database, max(20, args.agents // 10), "requester")
    world = World(now=now, requesters=requesters, wallets=await open_wallets(database, requesters))
    world.agents = await insert_agents(database, owners, args.agents, now, rng)
    async with BulkLoader(backend) as loader:
        await load_outcomes(
            loader,
            world,
            ((a, outcomes_per_agent) for a in world.agents),
            rng,
            progress=backend.name,
        )
        await insert_integrity_rows(database, world, rng)
        analyze_started = time.perf_counter()
        await loader.analyze()
        analyze_s = time.perf_counter() - analyze_started
        fk_skipped = loader.fk_checks_skipped
    info = {
        "users": len(owners) + len(requesters),
        "agent_owners": len(owners),
        "requesters": len(requesters),
        "agents": len(world.agents),
        "outcomes": world.outcomes,
        "outcomes_per_agent": outcomes_per_agent,
        "ratings": world.ratings,
        "excluded_outcomes": world.excluded,
        "flagged_contracts": len(world.contract_ids),
        "generation_s": round(time.perf_counter() - started, 1),
        "vacuum_analyze_s": round(analyze_s, 1) if backend.name == "postgres" else None,
        "foreign_key_checks_skipped_while_loading": fk_skipped,
    }
    return world, info


async def run_recompute_all(
    backend: Backend,
    database: Database,
    settings: Settings,
    meter: StatementMeter,
    args: argparse.Namespace,
    outcomes: int,
) -> tuple[dict[str, Any], datetime]:
    now = utcnow()
    before = meter.reading()
    hwm_reset = reset_peak_rss()
    rss_before = rss_kib("VmRSS")
    cpu = time.process_time()
    with PgBackendCpu(backend.pg_database, interval=0.5) as pg_cpu, RssSampler() as sampler:
        started = time.perf_counter()
        done = await trust.recompute_all(
            database, settings=settings, now=now, chunk_size=args.chunk_size
        )
        seconds = time.perf_counter() - started
    cpu = time.process_time() - cpu
    peak = rss_kib("VmHWM") if hwm_reset else None
    result = {
        "seconds": round(seconds, 2),
        "agents_recomputed": done,
        "outcomes_per_s": round(outcomes / seconds),
        "agents_per_s": round(done / seconds, 1),
        "process_cpu_s": round(cpu, 2),
        "process_cpu_fraction": round(cpu / seconds, 3),
        "postgres_backend_cpu_s": round(pg_cpu.seconds, 2) if pg_cpu.seconds is not None else None,
        **meter.since(before).as_dict(),
        "rss_before_mib": mib(rss_before),
        "peak_rss_mib": mib(peak) if peak is not None else mib(sampler.peak),
        "peak_rss_sampled_mib": mib(sampler.peak),
        "peak_rss_is": "VmHWM reset just before the run" if hwm_reset else "sampled every 50 ms",
    }
    return result, now


async def recompute_in_large_db(
    database: Database,
    settings: Settings,
    meter: StatementMeter,
    world: World,
    runs: int,
    warmup: int,
) -> dict[str, Any]:
    """The incremental recompute of random agents, with the whole batch's data in the tables."""
    fx = SettleFixture(database, settings, mesh.Party(None, None, uuid.uuid4()), meter, {})
    rng = random.Random(7)
    times = []
    for i in range(warmup + runs):
        elapsed, _ = await time_recompute(fx, rng.choice(world.agents).id)
        if i >= warmup:
            times.append(elapsed)
    return h.dist_ms(times)


async def batch_phase(
    backend: Backend, workdir: Path, args: argparse.Namespace, leaderboard: bool
) -> dict[str, Any]:
    per_agent = args.outcomes_per_agent
    if backend.name == "sqlite" and args.sqlite_outcomes_per_agent:
        per_agent = args.sqlite_outcomes_per_agent
    settings = bench_settings(backend, workdir)
    database = Database.from_engine(create_engine(settings))
    out: dict[str, Any] = {}
    try:
        print(f"  batch: generating {args.agents:,} agents x {per_agent} outcomes")
        world, out["data"] = await batch_world(backend, database, args, per_agent)
        out["data"] |= await table_sizes(database.engine, backend)
        print(
            f"    {world.outcomes:,} outcomes, {world.ratings:,} ratings in "
            f"{out['data']['generation_s']} s (not measured)"
        )
        meter = StatementMeter(database.engine)
        runs = []
        now = utcnow()
        for repeat in range(args.batch_repeats):
            result, now = await run_recompute_all(
                backend, database, settings, meter, args, world.outcomes
            )
            result["scores_existed"] = repeat > 0
            runs.append(result)
            print(
                f"    recompute_all #{repeat + 1}: {result['seconds']} s, "
                f"{result['outcomes_per_s']:,} outcomes/s, peak RSS {result['peak_rss_mib']} MiB, "
                f"{result['statements']} statements"
            )
        out["recompute_all"] = runs
        rng = random.Random(args.seed + 1)
        sample = [a.id for a in rng.sample(world.agents, min(args.sample, len(world.agents)))]
        out["sample_check"] = await check_sample(database, settings, sample, now)
        print(
            f"    {len(sample)} agents one by one vs. the batch: exactly equal "
            f"{out['sample_check']['exactly_equal']}"
        )
        chunk = [a.id for a in world.agents[: args.chunk_size]]
        spread = [a.id for a in world.agents[:: max(1, len(world.agents) // 2000)]][:2000]
        out["where_time_goes"] = await where_time_goes(
            database, settings, meter, spread, args.chunk_size, now
        )
        out["cprofile_one_chunk"] = await profile_chunk(database, settings, chunk, now)
        out["recompute_one_agent_in_large_db"] = await recompute_in_large_db(
            database, settings, meter, world, min(args.runs, 200), args.warmup
        ) | {"outcomes_per_agent": per_agent}
    finally:
        await database.dispose()
    if leaderboard:
        out["leaderboard"] = await leaderboard_phase(backend, workdir, args)
    return out


# ---------------------------------------------------------------- phase 3: leaderboard


async def leaderboard_phase(
    backend: Backend, workdir: Path, args: argparse.Namespace
) -> dict[str, Any]:
    settings = bench_settings(backend, workdir)
    app = create_app(settings)
    out: dict[str, Any] = {
        "client": "httpx.AsyncClient over ASGITransport, in this process (no sockets)",
        "queries": {},
    }
    async with app.router.lifespan_context(app), _client(app) as client:
        owner = await _register(client)
        cache = app.state.leaderboard_cache
        # What the transport and the hub's middleware cost alone: a route with no auth, no DB.
        baseline = []
        for _ in range(args.warmup):
            await client.get("/healthz")
        for _ in range(args.leaderboard_calls):
            started = time.perf_counter()
            response = await client.get("/healthz")
            baseline.append(time.perf_counter() - started)
            response.raise_for_status()
        out["baseline_healthz"] = h.dist_ms(baseline)
        for name, params in LEADERBOARD_QUERIES.items():
            cache.invalidate()
            started = time.perf_counter()
            first = await client.get(HTTP_PATH, params=params, headers=owner)
            first_s = time.perf_counter() - started
            body = _leaderboard_body(first, cached=False)
            uncached = []
            for _ in range(args.uncached_calls):
                cache.invalidate()
                started = time.perf_counter()
                response = await client.get(HTTP_PATH, params=params, headers=owner)
                uncached.append(time.perf_counter() - started)
                _leaderboard_body(response, cached=False)
            cached = []
            for i in range(args.warmup + args.leaderboard_calls):
                started = time.perf_counter()
                response = await client.get(HTTP_PATH, params=params, headers=owner)
                elapsed = time.perf_counter() - started
                _leaderboard_body(response, cached=True)
                if i >= args.warmup:
                    cached.append(elapsed)
            entry: dict[str, Any] = {
                "params": params,
                "rows": len(body["items"]),
                "first_call_ms": round(1000 * first_s, 3),
                "uncached": h.dist_ms(uncached),
                "cached": h.dist_ms(cached),
            }
            if name == "trust":
                entry["while_trust_changes"] = {
                    f"{rate:g}/s": await while_invalidated(
                        client,
                        cache,
                        params,
                        owner,
                        changes_per_s=rate,
                        requests_per_s=args.leaderboard_rps,
                        seconds=args.changing_seconds,
                    )
                    for rate in args.trust_changes_per_s
                }
            out["queries"][name] = entry
            print(
                f"  leaderboard {name}: first {entry['first_call_ms']} ms, uncached p50 "
                f"{entry['uncached']['p50_ms']} p95 {entry['uncached']['p95_ms']} ms; cached "
                f"p50 {entry['cached']['p50_ms']} p95 {entry['cached']['p95_ms']} p99 "
                f"{entry['cached']['p99_ms']} ms ({entry['rows']} rows)"
            )
            for rate, figures in entry.get("while_trust_changes", {}).items():
                print(
                    f"    at {args.leaderboard_rps:g} req/s while trust changes {rate}: "
                    f"p50 {figures['p50_ms']} p95 {figures['p95_ms']} ms, "
                    f"uncached {figures['uncached_fraction']:.0%}"
                )
    return out


async def while_invalidated(
    client: httpx.AsyncClient,
    cache: Any,
    params: dict[str, str],
    owner: dict[str, str],
    *,
    changes_per_s: float,
    requests_per_s: float,
    seconds: float,
) -> dict[str, Any]:
    """Requests paced at ``requests_per_s`` (one at a time; a late one goes at once) while
    trust changes ``changes_per_s`` times a second.

    Every commit that changes trust (each settlement, failure, ruling, rating) empties the
    cache through the same ``invalidate()`` called here, after commit: this is the
    leaderboard beside a steady settle load.
    """
    times: list[float] = []
    misses = 0

    async def changes() -> None:
        while True:
            cache.invalidate()
            await asyncio.sleep(1 / changes_per_s)

    task = asyncio.create_task(changes())
    await asyncio.sleep(0)
    began = time.perf_counter()
    try:
        for index in range(round(seconds * requests_per_s)):
            delay = began + index / requests_per_s - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            started = time.perf_counter()
            response = await client.get(HTTP_PATH, params=params, headers=owner)
            times.append(time.perf_counter() - started)
            if response.status_code != 200:
                raise RuntimeError(f"leaderboard answered {response.status_code}")
            misses += not response.json()["cached"]
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    elapsed = time.perf_counter() - began
    return h.dist_ms(times) | {
        "trust_changes_per_s": changes_per_s,
        "requests_per_s_target": requests_per_s,
        "requests_per_s": round(len(times) / elapsed, 1) if elapsed else None,
        "uncached_fraction": round(misses / len(times), 3) if times else None,
    }


@contextlib.asynccontextmanager
async def _client(app: Any) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app, client=("203.0.113.7", 40000))
    async with httpx.AsyncClient(
        transport=transport, base_url="http://testserver", timeout=120
    ) as client:
        yield client


async def _register(client: httpx.AsyncClient) -> dict[str, str]:
    body = {
        "email": f"viewer-{uuid.uuid4().hex[:10]}@example.com",
        "password": secrets.token_urlsafe(24),
    }
    response = await client.post("/api/v1/auth/register", json=body)
    if response.status_code != 201:
        raise RuntimeError(f"register answered {response.status_code}: {response.text[:300]}")
    response = await client.post("/api/v1/auth/login", json=body)
    if response.status_code != 200:
        raise RuntimeError(f"login answered {response.status_code}: {response.text[:300]}")
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


def _leaderboard_body(response: httpx.Response, *, cached: bool) -> dict[str, Any]:
    if response.status_code != 200:
        raise RuntimeError(f"leaderboard answered {response.status_code}: {response.text[:300]}")
    body: dict[str, Any] = response.json()
    if body["cached"] is not cached:
        raise RuntimeError(f"expected cached={cached}, got {body['cached']}")
    return body


# ---------------------------------------------------------------- main


def goals(backends: dict[str, Any], args: argparse.Namespace) -> dict[str, Any]:
    verdicts: dict[str, Any] = {}
    for name, data in backends.items():
        mine: dict[str, Any] = {}
        batch = data.get("batch")
        if batch:
            first = batch["recompute_all"][0]
            size = (batch["data"]["agents"], batch["data"]["outcomes"])
            at_size = size == (GOAL_BATCH_AGENTS, GOAL_BATCH_OUTCOMES)
            slowest = max(r["seconds"] for r in batch["recompute_all"])
            mine["recompute_all_seconds"] = {
                "goal": f"< {GOAL_BATCH_SECONDS:g} s for {GOAL_BATCH_AGENTS:,} agents / "
                f"{GOAL_BATCH_OUTCOMES:,} outcomes"
                + ("" if name == "postgres" else " (set for PostgreSQL; shown for comparison)"),
                "value": slowest,
                "first_run": first["seconds"],
                "at_goal_size": at_size,
                "met": (slowest < GOAL_BATCH_SECONDS) if at_size else None,
                "sample_exactly_equal": batch["sample_check"]["exactly_equal"],
            }
            board = batch.get("leaderboard")
            if board:
                worst = max(q["cached"]["p95_ms"] for q in board["queries"].values())
                mine["leaderboard_cached_p95_ms"] = {
                    "goal": f"< {GOAL_LEADERBOARD_P95_MS:g} ms (cached), every query",
                    "value": worst,
                    "met": worst < GOAL_LEADERBOARD_P95_MS,
                }
        verdicts[name] = mine
    return verdicts


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    configure_logs()
    began = time.perf_counter()
    machine = h.machine_info() | {"uncommitted_changes": uncommitted_changes()}
    started_at = h.now_iso()
    backends: dict[str, Any] = {}
    skipped: dict[str, str] = {}
    h.install_fast_loop()
    with h.workspace() as workdir:
        for name in args.backends:
            data: dict[str, Any] = {}
            backend_started = time.perf_counter()
            if "settle" in args.phases:
                with migrated(name, workdir, "settle") as backend:
                    if backend is None:
                        skipped[name] = "PostgreSQL unreachable"
                        continue
                    print(f"{name}: settle phase")
                    data["settle"] = asyncio.run(settle_phase(backend, workdir, args))
                    data["info"] = backend.info
            if "batch" in args.phases:
                with migrated(name, workdir, "batch") as backend:
                    if backend is None:
                        skipped[name] = "PostgreSQL unreachable"
                        continue
                    print(f"{name}: batch phase")
                    data["batch"] = asyncio.run(
                        batch_phase(backend, workdir, args, "leaderboard" in args.phases)
                    )
                    data["info"] = backend.info
            data["seconds"] = round(time.perf_counter() - backend_started, 1)
            backends[name] = data

    results = {
        "benchmark": "trust",
        "timestamp": started_at,
        "finished": h.now_iso(),
        "run_seconds": round(time.perf_counter() - began, 1),
        "machine": machine
        | {
            "loadavg_at_end": h.loadavg(),
            "note": "2 cores, shared with other jobs (noisy); the benchmark, PostgreSQL and "
            "anything else running share them",
        },
        "parameters": {
            "quick": args.quick,
            "phases": args.phases,
            "prior_outcomes": args.prior_outcomes,
            "recompute_runs": args.runs,
            "settle_runs_per_variant": args.settle_runs,
            "warmup": args.warmup,
            "agents": args.agents,
            "outcomes_per_agent": args.outcomes_per_agent,
            "sqlite_outcomes_per_agent": args.sqlite_outcomes_per_agent,
            "chunk_size": args.chunk_size,
            "batch_repeats": args.batch_repeats,
            "sample": args.sample,
            "leaderboard_calls": args.leaderboard_calls,
            "uncached_calls": args.uncached_calls,
            "trust_changes_per_s": args.trust_changes_per_s,
            "leaderboard_rps": args.leaderboard_rps,
            "changing_seconds": args.changing_seconds,
            "seed": args.seed,
            "hub": "the service layer and the app in this process, one event loop (uvloop), "
            "default pool (10 + 10 overflow); leaderboard through httpx ASGITransport",
        },
        "what": {
            "recompute_in_transaction": "trust.service.recompute(session, [agent]) alone, inside "
            "an open write transaction, then rolled back; the outcomes are unchanged, so the "
            "score does not change and no trust.updated event is written",
            "settle": "mesh.service.settle (score 0.95, rating 5) in in_transaction, as POST "
            ".../settle runs it minus idempotency and rendering; with the real recompute and "
            "with trust.service.recompute patched to a no-op, alternating; each outcome is "
            "deleted again and the agent recomputed afterwards (untimed)",
            "added_by_recompute": "p50/p95 of the settlements with recompute minus those without "
            "(difference of the percentiles); paired_*: percentiles of per-pair differences",
            "recompute_all": "trust.service.recompute_all(database, chunk_size) over every "
            "agent; the first run inserts every score, later runs update them (as nightly)",
            "sample_check": "agents recomputed one by one with recompute() (same now) and "
            "compared with what the batch stored",
            "leaderboard": "GET /api/v1/marketplace/leaderboard through the app in-process; "
            "uncached = the cache emptied (leaderboard_cache.invalidate()) before each call; "
            "while_trust_changes = by=trust requests paced at leaderboard_rps while "
            "invalidate() runs N times a second, as the after-commit hook of every "
            "trust-changing commit does",
        },
        "goals": goals(backends, args),
        "backends": backends,
        "skipped": skipped,
    }
    h.write_results(args.output, results)
    print_summary(results)
    return 0


def uncommitted_changes() -> list[str] | None:
    """Files changed since ``git_commit`` (read-only ``git status``): what was measured."""
    git = shutil.which("git")
    if git is None:
        return None
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        out = subprocess.run(  # noqa: S603 - read-only query, no shell
            [git, "status", "--porcelain", "--", "src"],
            capture_output=True,
            text=True,
            cwd=h.REPO_ROOT,
            timeout=5,
            check=False,
        )
        if out.returncode == 0:
            return [line.strip() for line in out.stdout.splitlines()]
    return None


def print_summary(results: dict[str, Any]) -> None:
    print(f"\nrun took {results['run_seconds']:.0f} s")
    for name, verdicts in results["goals"].items():
        for goal, verdict in verdicts.items():
            met = verdict["met"]
            state = "not at the goal's size" if met is None else ("met" if met else "MISSED")
            print(f"{name:8s} {goal}: {verdict['value']} (goal {verdict['goal']}): {state}")
    for name, why in results["skipped"].items():
        print(f"{name:8s} skipped: {why}")


if __name__ == "__main__":
    sys.exit(main())
