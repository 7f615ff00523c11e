"""Ledger throughput: transfers and escrow hold+release pairs per second, beside pgbench.

Drives the real service layer in this process (no HTTP): ``wallets.move`` and
``escrow.hold`` + ``escrow.release`` (platform fee 10 %), each inside ``in_transaction`` as
the API runs them, on SQLite and on PostgreSQL, with 1 and 50 concurrent writers (asyncio
tasks) spread over many funded wallets. On PostgreSQL, ``pgbench -N`` (simple-update) runs
against the same scratch database in the same rounds; the headline figure is the ratio
hub transfers/s / pgbench TPS. A last scenario has 50 writers all debit one wallet, more
often than it can pay, and checks that exactly the funded amount moved and that
``hermes ledger check`` finds nothing wrong. Finally it counts statements and wire round
trips per operation and splits a transfer's time into database calls and Python.

    .venv/bin/python bench/ledger.py [--duration 10] [--rounds 3] [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import os
import random
import re
import resource
import secrets
import shutil
import statistics
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import structlog
from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession
from sqlalchemy.orm import Session

import _harness as h
import hermes_hub.db.registry  # noqa: F401 - every model, so foreign keys resolve
from hermes_hub.config import Settings
from hermes_hub.db import migrate
from hermes_hub.db.session import Database, create_engine
from hermes_hub.db.transaction import in_transaction
from hermes_hub.identity.models import Agent, User
from hermes_hub.ledger import accounts, escrow, wallets
from hermes_hub.ledger.check import check_ledger
from hermes_hub.ledger.errors import InsufficientFundsError

GOAL_TRANSFERS_PER_S = 2000.0
GOAL_WRITERS = 50
ACTOR = "system:bench"
FEES = escrow.FeeRates(platform_fee_bp=1000, org_share_bp=0)
FUNDING = 10**12  # per wallet: never runs dry at 1 unit per transfer, 100 per hold
HOLD_AMOUNT = 100
RELEASE_SCORE = 1.0  # releases 100 %: agent 90, platform fee 10
PGBENCH_SCALE = 10

# ---------------------------------------------------------------- retries, counted quietly

RETRIES: collections.Counter[str] = collections.Counter()


def _quiet_logs(_logger: Any, method: str, event_dict: dict[str, Any]) -> dict[str, Any]:
    # in_transaction logs each retry (deadlock, serialization failure) at info: count them.
    if event_dict.get("event") == "transaction_retry":
        RETRIES[str(event_dict.get("sqlstate"))] += 1
    if method in {"debug", "info"}:
        raise structlog.DropEvent
    return event_dict


def configure_logs() -> None:
    structlog.configure(
        processors=[_quiet_logs, structlog.dev.ConsoleRenderer(colors=False)],
        cache_logger_on_first_use=False,
    )


# ---------------------------------------------------------------- arguments


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument(
        "--duration", type=float, default=10.0, help="seconds per measured hub run [10]"
    )
    parser.add_argument(
        "--pgbench-duration", type=int, default=15, help="seconds per pgbench run (-T) [15]"
    )
    parser.add_argument("--warmup", type=float, default=2.0, help="unrecorded seconds first [2]")
    parser.add_argument("--rounds", type=int, default=3, help="measured rounds per target [3]")
    parser.add_argument(
        "--writers",
        type=lambda v: [int(x) for x in v.split(",")],
        default=[1, 50],
        help="concurrent writers, comma-separated [1,50]",
    )
    parser.add_argument("--wallets", type=int, default=2000, help="funded user wallets [2000]")
    parser.add_argument("--agents", type=int, default=200, help="payee agents [200]")
    parser.add_argument(
        "--hot-funding",
        type=int,
        default=3000,
        help="units on the hot wallet; as many 1-unit debits must succeed [3000]",
    )
    parser.add_argument(
        "--hot-extra", type=int, default=200, help="debits past the funding, must all fail [200]"
    )
    parser.add_argument(
        "--profile-ops", type=int, default=300, help="sequential operations profiled [300]"
    )
    parser.add_argument(
        "--backends", type=h.backends_arg, default=["sqlite", "postgres"], help="[sqlite,postgres]"
    )
    parser.add_argument(
        "--quick", action="store_true", help="smoke run: 1 round of 2 s, small data, 3 s pgbench"
    )
    parser.add_argument(
        "--output",
        type=Path,
        default=h.RESULTS_DIR / "ledger.json",
        help="[bench/results/ledger.json]",
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.duration, args.pgbench_duration, args.warmup, args.rounds = 2.0, 3, 0.5, 1
        args.wallets, args.agents = min(args.wallets, 200), min(args.agents, 20)
        args.hot_funding, args.hot_extra, args.profile_ops = 300, 50, 50
    return args


# ---------------------------------------------------------------- CPU accounting


def machine_busy_seconds() -> float | None:
    """CPU seconds all cores spent busy since boot (Linux /proc/stat), or None."""
    try:
        fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    except (OSError, IndexError):
        return None
    values = [int(x) for x in fields]
    idle = values[3] + (values[4] if len(values) > 4 else 0)  # idle + iowait
    return (sum(values[:8]) - idle) / os.sysconf("SC_CLK_TCK")


@dataclass
class CpuMeter:
    """Our process's CPU, our children's (pgbench), and the whole machine's, over a span."""

    own: float = field(default_factory=time.process_time)
    children: float = field(
        default_factory=lambda: _rusage_seconds(resource.getrusage(resource.RUSAGE_CHILDREN))
    )
    machine: float | None = field(default_factory=machine_busy_seconds)
    wall: float = field(default_factory=time.perf_counter)

    def read(self, operations: int, *, client: str) -> dict[str, Any]:
        """CPU per operation. ``client`` is who ran the load: this process, or pgbench."""
        wall = time.perf_counter() - self.wall
        own = time.process_time() - self.own
        children = _rusage_seconds(resource.getrusage(resource.RUSAGE_CHILDREN)) - self.children
        machine_now = machine_busy_seconds()
        client_cpu = own if client == "hub" else children
        out: dict[str, Any] = {
            "client_cpu_fraction": round(client_cpu / wall, 3) if wall else None,
            "client_cpu_ms_per_op": round(1000 * client_cpu / operations, 4)
            if operations
            else None,
        }
        if self.machine is not None and machine_now is not None:
            busy = machine_now - self.machine
            out["machine_busy_cores"] = round(busy / wall, 3) if wall else None
            # Everything else busy on the machine: mostly PostgreSQL's backends.
            rest = max(busy - own - children, 0.0)
            out["other_cpu_ms_per_op"] = round(1000 * rest / operations, 4) if operations else None
        return out


def _rusage_seconds(usage: resource.struct_rusage) -> float:
    return usage.ru_utime + usage.ru_stime


class PgBackendCpu:
    """CPU time of the PostgreSQL backends serving one database, read from /proc.

    Other work on a shared machine (other databases, other processes) is left out, which the
    machine-wide figure cannot do. Backends that start during the span count in full; with
    ``interval`` a thread samples while the span lasts, so backends that exit before its end
    (pgbench's) are counted up to their last sample.
    """

    def __init__(self, database: str | None, interval: float | None = None) -> None:
        self.marker = f" {database} ".encode() if database else None
        self.interval = interval
        self.base: dict[int, float] = {}
        self.last: dict[int, float] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _scan(self) -> dict[int, float]:
        found: dict[int, float] = {}
        if self.marker is None:
            return found
        tick = os.sysconf("SC_CLK_TCK")
        for entry in os.scandir("/proc"):
            if not entry.name.isdigit():
                continue
            try:
                with open(f"/proc/{entry.name}/cmdline", "rb") as f:
                    cmdline = f.read(200)
                if not cmdline.startswith(b"postgres: ") or self.marker not in cmdline:
                    continue
                with open(f"/proc/{entry.name}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
                found[int(entry.name)] = (int(fields[11]) + int(fields[12])) / tick
            except (OSError, IndexError, ValueError):
                continue
        return found

    def _update(self) -> None:
        for pid, cpu in self._scan().items():
            self.base.setdefault(pid, 0.0)  # born during the span: all of its CPU counts
            self.last[pid] = cpu

    def __enter__(self) -> PgBackendCpu:
        self.base = self._scan()
        self.last = dict(self.base)
        if self.interval:
            self._thread = threading.Thread(target=self._loop, daemon=True)
            self._thread.start()
        return self

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self._update()

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self._update()

    @property
    def seconds(self) -> float | None:
        if self.marker is None:
            return None
        return sum(self.last[pid] - self.base.get(pid, 0.0) for pid in self.last)

    def per_op(self, operations: int, wall: float) -> dict[str, Any]:
        used = self.seconds
        if used is None or not operations:
            return {}
        return {
            "postgres_cpu_ms_per_op": round(1000 * used / operations, 4),
            "postgres_cpu_cores": round(used / wall, 3) if wall else None,
        }


# ---------------------------------------------------------------- seeding


@dataclass
class Fixture:
    database: Database
    wallets: list[uuid.UUID]
    agents: list[uuid.UUID]
    hot_wallet: uuid.UUID
    hot_user: uuid.UUID
    # One user with one agent, for the endpoint-shaped profile (selectors "wallet" -> agent).
    owner: User
    owned_agent: uuid.UUID
    # The scratch database's name on PostgreSQL, to find its backends' CPU time.
    pg_database: str | None = None


async def seed(
    database: Database, n_wallets: int, n_agents: int, hot_funding: int, pg_database: str | None
) -> Fixture:
    users = [
        User(
            id=uuid.uuid4(),
            email=f"bench-{i}-{secrets.token_hex(3)}@example.com",
            password_hash="x",  # never used to log in
        )
        for i in range(n_wallets + 1)
    ]
    agents = [
        Agent(
            id=uuid.uuid4(),
            owner_id=users[i % n_wallets].id,
            name=f"bench agent {i}",
            public_key=secrets.token_hex(16),
        )
        for i in range(n_agents)
    ]
    async with database.writer() as session:
        session.add_all(users)
        await session.flush()
        session.add_all(agents)
        await session.commit()
    user_ids = [u.id for u in users]
    hot_user = user_ids.pop()

    async def fund(chunk: list[uuid.UUID], amount: int) -> None:
        async def work(session: AsyncSession) -> None:
            for user_id in chunk:
                await wallets.grant(
                    session, user_id=user_id, amount=amount, reason="bench", actor=ACTOR
                )

        await in_transaction(database, work)

    for start in range(0, len(user_ids), 200):
        await fund(user_ids[start : start + 200], FUNDING)
    await fund([hot_user], hot_funding)

    async def open_accounts(session: AsyncSession) -> tuple[list[uuid.UUID], list[uuid.UUID]]:
        wallet_ids = [await accounts.user_wallet(session, u) for u in user_ids]
        agent_ids = [a.id for a in agents]
        for agent_id in agent_ids:
            await accounts.agent_wallet(session, agent_id)
        await accounts.platform_account(session)
        return wallet_ids, agent_ids

    wallet_ids, agent_ids = await in_transaction(database, open_accounts)
    hot_wallet = await in_transaction(database, lambda s: accounts.user_wallet(s, hot_user))
    owner = users[0]
    return Fixture(
        database=database,
        wallets=wallet_ids,
        agents=agent_ids,
        hot_wallet=hot_wallet,
        hot_user=hot_user,
        owner=owner,
        owned_agent=agents[0].id,
        pg_database=pg_database,
    )


# ---------------------------------------------------------------- operations


async def do_transfer(
    fx: Fixture, rng: random.Random, tally: Tally, debit: uuid.UUID | None = None
) -> None:
    source, destination = rng.sample(fx.wallets, 2)
    if debit is not None:
        source = debit
    t0 = time.perf_counter()
    await in_transaction(
        fx.database,
        lambda s: wallets.move(
            s, debit=source, credit=destination, amount=1, memo="bench", actor=ACTOR
        ),
    )
    tally.add("transfer", time.perf_counter() - t0)


async def do_pair(fx: Fixture, rng: random.Random, tally: Tally) -> None:
    payer = rng.choice(fx.wallets)
    payee = rng.choice(fx.agents)
    t0 = time.perf_counter()
    held = await in_transaction(
        fx.database, lambda s: escrow.hold(s, payer_account_id=payer, amount=HOLD_AMOUNT)
    )
    t1 = time.perf_counter()
    hold_id = held.id
    await in_transaction(
        fx.database,
        lambda s: escrow.release(
            s, hold_id=hold_id, score=RELEASE_SCORE, payee_agent_id=payee, rates=FEES
        ),
    )
    t2 = time.perf_counter()
    tally.add("hold", t1 - t0)
    tally.add("release", t2 - t1)
    tally.add("pair", t2 - t0)


class Tally:
    def __init__(self) -> None:
        self.ms: dict[str, list[float]] = collections.defaultdict(list)
        self.errors: collections.Counter[str] = collections.Counter()

    def add(self, kind: str, seconds: float) -> None:
        self.ms[kind].append(seconds * 1000)

    def percentiles(self, kind: str, prefix: str = "") -> dict[str, float | None]:
        values = self.ms.get(kind, [])
        return {
            f"{prefix}p50_ms": h.percentile_ms(values, 50),
            f"{prefix}p95_ms": h.percentile_ms(values, 95),
            f"{prefix}p99_ms": h.percentile_ms(values, 99),
        }


Operation = Callable[[Fixture, random.Random, Tally], Awaitable[None]]


async def run_load(
    fx: Fixture,
    op: Operation,
    *,
    writers: int,
    seconds: float | None = None,
    tickets: int | None = None,
    seed_base: int = 0,
) -> tuple[Tally, float, dict[str, Any]]:
    """``writers`` tasks run ``op`` back to back for ``seconds``, or until ``tickets`` are used."""
    tally = Tally()
    remaining = [tickets if tickets is not None else -1]
    retries_before = sum(RETRIES.values())
    meter = CpuMeter()
    started = time.perf_counter()
    deadline = started + seconds if seconds is not None else float("inf")

    async def worker(index: int) -> None:
        rng = random.Random(seed_base * 1000 + index)
        while time.perf_counter() < deadline:
            if tickets is not None:
                if remaining[0] <= 0:
                    return
                remaining[0] -= 1
            try:
                await op(fx, rng, tally)
            except Exception as exc:  # counted, not fatal: the summary reports every error
                tally.errors[type(exc).__name__] += 1

    with PgBackendCpu(fx.pg_database) as backends:
        await asyncio.gather(*(worker(i) for i in range(writers)))
    elapsed = time.perf_counter() - started
    main_kind = "pair" if "pair" in tally.ms else "transfer"
    done = len(tally.ms.get(main_kind, []))
    cpu = meter.read(done, client="hub") | backends.per_op(done, elapsed)
    cpu["retries"] = sum(RETRIES.values()) - retries_before
    return tally, elapsed, cpu


async def measure_transfers(fx: Fixture, writers: int, seconds: float, seed: int) -> dict[str, Any]:
    tally, elapsed, cpu = await run_load(
        fx, do_transfer, writers=writers, seconds=seconds, seed_base=seed
    )
    done = len(tally.ms["transfer"])
    return {
        "transfers_per_s": round(done / elapsed, 1),
        **tally.percentiles("transfer"),
        "transfers": done,
        "errors": sum(tally.errors.values()),
        "error_detail": dict(tally.errors),
        "duration_s": round(elapsed, 3),
        **cpu,
    }


async def measure_pairs(fx: Fixture, writers: int, seconds: float, seed: int) -> dict[str, Any]:
    tally, elapsed, cpu = await run_load(
        fx, do_pair, writers=writers, seconds=seconds, seed_base=seed
    )
    done = len(tally.ms["pair"])
    return {
        "pairs_per_s": round(done / elapsed, 1),
        "transactions_per_s": round(2 * done / elapsed, 1),
        **tally.percentiles("pair"),
        **tally.percentiles("hold", "hold_"),
        **tally.percentiles("release", "release_"),
        "pairs": done,
        "errors": sum(tally.errors.values()),
        "error_detail": dict(tally.errors),
        "duration_s": round(elapsed, 3),
        **cpu,
    }


# ---------------------------------------------------------------- the hot account


async def hot_account(fx: Fixture, writers: int, funding: int, extra: int) -> dict[str, Any]:
    """``writers`` tasks debit one wallet 1 unit at a time, ``extra`` times more than it holds."""

    async def debit_hot(fx: Fixture, rng: random.Random, tally: Tally) -> None:
        try:
            await do_transfer(fx, rng, tally, debit=fx.hot_wallet)
        except InsufficientFundsError:
            tally.errors["InsufficientFundsError (expected)"] += 1

    attempts = funding + extra
    tally, elapsed, cpu = await run_load(fx, debit_hot, writers=writers, tickets=attempts)
    moved = len(tally.ms["transfer"])
    refused = tally.errors.pop("InsufficientFundsError (expected)", 0)
    async with fx.database.read_sessions() as session:
        state = await accounts.read_account(session, fx.hot_wallet)
        report = await check_ledger(session)
    checks = {
        "succeeded_equals_funding": moved == funding,
        "refused_equals_extra": refused == extra,
        "final_balance_zero": state.balance == 0 and state.available == 0,
        "debits_posted_equals_funding": state.debits_posted == funding,
        "no_other_errors": not tally.errors,
        "ledger_check_ok": report.ok,
    }
    return {
        "writers": writers,
        "funding": funding,
        "attempts": attempts,
        "succeeded": moved,
        "refused_insufficient_funds": refused,
        "other_errors": dict(tally.errors),
        "final_balance": state.balance,
        "final_debits_posted": state.debits_posted,
        "transfers_per_s": round(moved / elapsed, 1),
        **tally.percentiles("transfer"),
        "duration_s": round(elapsed, 3),
        **cpu,
        "ledger_check": {k: v for k, v in report.as_dict().items() if k != "violations"}
        | {"violations": report.violations[:10]},
        "checks": checks,
        "correct": all(checks.values()),
    }


# ---------------------------------------------------------------- pgbench


def pg_conninfo(url: str) -> list[str]:
    parsed = make_url(url)
    args = ["-h", parsed.host or h.HOST, "-p", str(parsed.port or 5432)]
    if parsed.username:
        args += ["-U", parsed.username]
    return args


def pgbench_env(url: str) -> dict[str, str]:
    env = dict(os.environ)
    password = make_url(url).password
    if password:
        env["PGPASSWORD"] = password
    return env


def pgbench_init(url: str) -> float:
    t0 = time.perf_counter()
    database = make_url(url).database or ""
    completed = subprocess.run(  # noqa: S603 - fixed arguments, no shell
        [
            pgbench_path(),
            *pg_conninfo(url),
            "-i",
            "-s",
            str(PGBENCH_SCALE),
            "-q",
            database,
        ],
        capture_output=True,
        text=True,
        env=pgbench_env(url),
        timeout=600,
        check=False,
    )
    if completed.returncode != 0:
        raise RuntimeError(f"pgbench -i failed: {completed.stderr[-2000:]}")
    return time.perf_counter() - t0


def pgbench_path() -> str:
    return shutil.which("pgbench") or "/usr/bin/pgbench"


def pgbench_version() -> str | None:
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        out = subprocess.run(  # noqa: S603 - fixed arguments, no shell
            [pgbench_path(), "--version"], capture_output=True, text=True, timeout=10, check=False
        )
        return out.stdout.strip() or None
    return None


def run_pgbench(url: str, clients: int, seconds: int, logdir: Path) -> dict[str, Any]:
    """``pgbench -N`` (simple-update: no branch/teller updates) for ``seconds``."""
    database = make_url(url).database or ""
    threads = min(2, clients)
    for old in logdir.glob("pgbench_log*"):
        old.unlink()
    args = [
        pgbench_path(),
        *pg_conninfo(url),
        "-N",
        "-c",
        str(clients),
        "-j",
        str(threads),
        "-T",
        str(seconds),
        # Per-transaction log, for latency percentiles (pgbench only prints the average).
        "-l",
        f"--log-prefix={logdir / 'pgbench_log'}",
        database,
    ]
    for attempt in range(4):
        meter = CpuMeter()
        backends = PgBackendCpu(database, interval=0.2)
        with backends:
            completed = subprocess.run(  # noqa: S603 - fixed arguments, no shell
                args,
                capture_output=True,
                text=True,
                env=pgbench_env(url),
                timeout=seconds + 120,
                check=False,
                cwd=logdir,
            )
        # On a shared server other clients may hold most connections for a moment.
        if "too many clients" not in completed.stderr or attempt == 3:
            break
        print("  pgbench: too many clients on the server; retrying in 5 s")
        time.sleep(5)
    if completed.returncode != 0:
        raise RuntimeError(f"pgbench failed ({completed.returncode}): {completed.stderr[-2000:]}")
    out = completed.stdout

    def number(pattern: str) -> float | None:
        found = re.search(pattern, out)
        return float(found.group(1)) if found else None

    tps = number(r"tps = ([\d.]+) \(without initial connection time\)")
    if tps is None:
        raise RuntimeError(f"cannot read pgbench's TPS from:\n{out}")
    latencies: list[float] = []
    for path in logdir.glob("pgbench_log*"):
        for line in path.read_text().splitlines():
            parts = line.split()
            # client_id transaction_no time script_no time_epoch time_us; time in us
            if len(parts) >= 3 and parts[2].isdigit():
                latencies.append(int(parts[2]) / 1000)
    processed = int(number(r"number of transactions actually processed: (\d+)") or 0)
    return {
        "tps": round(tps, 1),
        "p50_ms": h.percentile_ms(latencies, 50),
        "p95_ms": h.percentile_ms(latencies, 95),
        "p99_ms": h.percentile_ms(latencies, 99),
        "latency_average_ms": number(r"latency average = ([\d.]+) ms"),
        "initial_connection_time_ms": number(r"initial connection time = ([\d.]+) ms"),
        "transactions": processed,
        "failed": int(number(r"number of failed transactions: (\d+)") or 0),
        "duration_s": seconds,
        "clients": clients,
        "threads": threads,
        **meter.read(processed, client="pgbench"),
        **backends.per_op(processed, float(seconds)),
    }


# ---------------------------------------------------------------- where the time goes


class StatementLog:
    """SQLAlchemy cursor events: statements, executemany batches, time in the driver, caching."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine.sync_engine
        self.enabled = False
        self.count = 0
        self.executemany = 0
        self.parameter_sets = 0
        self.driver_s = 0.0
        self.commit_s = 0.0
        self.by_statement: collections.Counter[str] = collections.Counter()
        self.cache: collections.Counter[str] = collections.Counter()
        self._t0: float | None = None
        self._commit_t0: float | None = None

    def __enter__(self) -> StatementLog:
        event.listen(self.engine, "before_cursor_execute", self._before)
        event.listen(self.engine, "after_cursor_execute", self._after)
        event.listen(self.engine, "commit", self._before_commit)
        event.listen(Session, "after_commit", self._after_commit)
        return self

    def __exit__(self, *_: object) -> None:
        event.remove(self.engine, "before_cursor_execute", self._before)
        event.remove(self.engine, "after_cursor_execute", self._after)
        event.remove(self.engine, "commit", self._before_commit)
        event.remove(Session, "after_commit", self._after_commit)

    def _before(
        self, _c: Any, _cur: Any, statement: str, params: Any, ctx: Any, many: bool
    ) -> None:
        self._t0 = time.perf_counter()

    def _after(self, _c: Any, _cur: Any, statement: str, params: Any, ctx: Any, many: bool) -> None:
        if self._t0 is not None and self.enabled:
            self.driver_s += time.perf_counter() - self._t0
            self.count += 1
            if many:
                self.executemany += 1
                self.parameter_sets += len(params)
            else:
                self.parameter_sets += 1
            self.by_statement[_label(statement, many)] += 1
            with contextlib.suppress(Exception):
                # "cached since 3s ago", "generated in 0.0001s", "no key ...", "raw sql"
                stats = ctx._get_cache_stats().split(" ")[0]
                self.cache[_CACHE_LABELS.get(stats, stats)] += 1
        self._t0 = None

    def _before_commit(self, _conn: Any) -> None:
        self._commit_t0 = time.perf_counter()

    def _after_commit(self, _session: Any) -> None:
        if self._commit_t0 is not None and self.enabled:
            self.commit_s += time.perf_counter() - self._commit_t0
        self._commit_t0 = None


_CACHE_LABELS = {"cached": "hit", "generated": "miss", "no": "no_cache_key", "raw": "raw_sql"}


def _label(statement: str, many: bool) -> str:
    text = " ".join(statement.split())
    verb = text.split(" ", 1)[0].upper()
    table = re.search(r"(?:FROM|INTO|UPDATE)\s+(\w+)", text, re.IGNORECASE)
    label = f"{verb} {table.group(1) if table else ''}".strip()
    if verb == "SELECT" and "FOR UPDATE" in text.upper():
        label += " FOR UPDATE"
    if verb == "INSERT" and "ON CONFLICT" in text.upper():
        label += " ON CONFLICT"
    return label + (" (executemany)" if many else "")


class WireCounter:
    """A TCP relay in front of PostgreSQL that counts round trips: each time the client
    speaks again after the server answered is one round trip (pipelined messages count once).
    """

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.round_trips = 0
        self.bytes_up = 0
        self.bytes_down = 0
        self.server: asyncio.Server | None = None
        self.port = 0

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._serve, h.HOST, 0)
        self.port = self.server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.server.wait_closed(), 2)

    async def _serve(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        server_r, server_w = await asyncio.open_connection(*self.target)
        state = {"last": "server"}

        async def pump(
            reader: asyncio.StreamReader, writer: asyncio.StreamWriter, up: bool
        ) -> None:
            try:
                while data := await reader.read(65536):
                    if up:
                        self.bytes_up += len(data)
                        if state["last"] == "server":
                            self.round_trips += 1
                        state["last"] = "client"
                    else:
                        self.bytes_down += len(data)
                        state["last"] = "server"
                    writer.write(data)
                    await writer.drain()
            except (ConnectionError, OSError):
                pass
            finally:
                with contextlib.suppress(Exception):
                    writer.close()

        await asyncio.gather(pump(client_r, server_w, True), pump(server_r, client_w, False))


async def profile_backend(
    fx: Fixture, url: str, backend: str, n_ops: int, pool: Settings
) -> dict[str, Any]:
    """Statements, round trips and time per operation, one operation at a time."""
    rng = random.Random(7)
    owner = fx.owner

    async def endpoint_transfer(fx: Fixture, rng: random.Random, tally: Tally) -> None:
        # What POST /api/v1/wallet/transfers runs inside in_transaction (minus HTTP/auth):
        # the owner's wallet to one of their agents' wallets, both named by selectors.
        t0 = time.perf_counter()

        async def work(session: AsyncSession) -> None:
            source = await wallets.controlled_account(session, user=owner, selector="wallet")
            target = await wallets.controlled_account(
                session, user=owner, selector=f"agent:{fx.owned_agent}"
            )
            await wallets.move(
                session, debit=source, credit=target, amount=1, memo="bench", actor=ACTOR
            )

        await in_transaction(fx.database, work)
        tally.add("transfer", time.perf_counter() - t0)

    operations: dict[str, tuple[Operation, int]] = {
        "transfer": (do_transfer, 1),
        "transfer_as_endpoint": (endpoint_transfer, 1),
        "hold_release_pair": (do_pair, 2),
    }
    result: dict[str, Any] = {}
    for name, (op, transactions) in operations.items():
        count = n_ops if transactions == 1 else max(n_ops // 2, 1)
        tally = Tally()
        for _ in range(5):  # warm the statement caches of this operation
            await op(fx, rng, tally)
        tally = Tally()
        log = StatementLog(fx.database.engine)
        with log, PgBackendCpu(fx.pg_database) as backends:
            log.enabled = True
            meter = CpuMeter()
            t0 = time.perf_counter()
            for _ in range(count):
                await op(fx, rng, tally)
            wall = time.perf_counter() - t0
            cpu = time.process_time() - meter.own
            log.enabled = False
        entry: dict[str, Any] = {
            "operations": count,
            "transactions_per_op": transactions,
            "statements_per_op": round(log.count / count, 2),
            "executemany_per_op": round(log.executemany / count, 2),
            "parameter_sets_per_op": round(log.parameter_sets / count, 2),
            "statements": {k: round(v / count, 2) for k, v in sorted(log.by_statement.items())},
            "sqlalchemy_compiled_cache": dict(log.cache),
            "wall_ms_per_op": round(1000 * wall / count, 3),
            "python_cpu_ms_per_op": round(1000 * cpu / count, 3),
            "in_cursor_execute_ms_per_op": round(1000 * log.driver_s / count, 3),
            "in_commit_ms_per_op": round(1000 * log.commit_s / count, 3),
            **backends.per_op(count, wall),
        }
        entry["outside_driver_ms_per_op"] = round(
            entry["wall_ms_per_op"]
            - entry["in_cursor_execute_ms_per_op"]
            - entry["in_commit_ms_per_op"],
            3,
        )
        result[name] = entry

    if backend == "postgres":
        # Same operations through a counting relay, on an engine of their own.
        parsed = make_url(url)
        relay = WireCounter(parsed.host or h.HOST, parsed.port or 5432)
        await relay.start()
        relayed_url = parsed.set(host=h.HOST, port=relay.port).render_as_string(hide_password=False)
        engine = create_engine(pool, url=relayed_url)
        relayed = Fixture(**{**fx.__dict__, "database": Database.from_engine(engine)})
        try:
            for name, (op, _transactions) in operations.items():
                count = max(n_ops // 5, 10)
                tally = Tally()
                for _ in range(5):
                    await op(relayed, rng, tally)
                before = relay.round_trips
                for _ in range(count):
                    await op(relayed, rng, tally)
                result[name]["wire_round_trips_per_op"] = round(
                    (relay.round_trips - before) / count, 2
                )
            # The floor: one round trip of the cheapest statement, through SQLAlchemy + asyncpg.
            result["select_1_round_trip_ms"] = await _select_one_ms(fx.database.engine)
        finally:
            await engine.dispose()
            await relay.stop()
    return result


async def _select_one_ms(engine: AsyncEngine, n: int = 500) -> dict[str, float]:
    from sqlalchemy import text

    async with engine.connect() as conn:
        for _ in range(20):
            await conn.execute(text("SELECT 1"))
        t0 = time.perf_counter()
        for _ in range(n):
            await conn.execute(text("SELECT 1"))
        sa_ms = 1000 * (time.perf_counter() - t0) / n
        raw = await conn.get_raw_connection()
        driver = raw.driver_connection
        assert driver is not None
        for _ in range(20):
            await driver.fetchval("SELECT 1")
        t0 = time.perf_counter()
        for _ in range(n):
            await driver.fetchval("SELECT 1")
        raw_ms = 1000 * (time.perf_counter() - t0) / n
        await conn.rollback()
    return {"sqlalchemy_core": round(sa_ms, 3), "asyncpg_direct": round(raw_ms, 3)}


# ---------------------------------------------------------------- one backend


@dataclass
class Backend:
    name: str
    url: str
    info: dict[str, Any]


@contextlib.contextmanager
def prepared_backend(name: str, workdir: Path) -> Iterator[Backend | None]:
    if name == "sqlite":
        url = f"sqlite+aiosqlite:///{workdir / 'sqlite' / 'hermes.db'}"
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
                "server_version": version,
            },
        )


def bench_backend(backend: Backend, args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    writers_max = max(args.writers)
    pool = Settings(
        database_url=backend.url,
        db_pool_size=writers_max,
        db_max_overflow=0,
        data_dir=workdir,
    )
    is_pg = backend.name == "postgres"
    pg_database = make_url(backend.url).database if is_pg else None
    info = dict(backend.info)
    if is_pg:
        print(f"  pgbench -i -s {PGBENCH_SCALE} ...")
        info["pgbench_init_s"] = round(pgbench_init(backend.url), 2)

    async def go() -> dict[str, Any]:
        engine = create_engine(pool, url=backend.url)
        database = Database.from_engine(engine)
        try:
            t0 = time.perf_counter()
            fx = await seed(database, args.wallets, args.agents, args.hot_funding, pg_database)
            info["seed_s"] = round(time.perf_counter() - t0, 2)
            print(
                f"  seeded {len(fx.wallets)} wallets, {len(fx.agents)} agents "
                f"in {info['seed_s']:.1f}s; warm-up {args.warmup:g}s per target"
            )

            async def warm_up() -> None:
                # Opens the pool's connections and prepares each statement on every one.
                await measure_transfers(fx, writers_max, args.warmup, seed=999)
                await measure_pairs(fx, writers_max, args.warmup, seed=998)

            async def release_connections() -> None:
                # pgbench's clients and a full pool together would pass max_connections (100).
                await database.engine.dispose()

            await warm_up()
            if is_pg:
                await release_connections()
                run_pgbench(backend.url, writers_max, max(2, round(args.warmup)), workdir)
            cold = is_pg

            targets: list[tuple[str, int]] = [
                (kind, w) for kind in ("transfers", "hold_release") for w in args.writers
            ]
            if is_pg:
                targets += [("pgbench", w) for w in args.writers]
            rounds: dict[str, list[dict[str, Any]]] = {f"{k}:{w}": [] for k, w in targets}
            for index in range(args.rounds):
                shift = index % len(targets)
                for kind, writers in targets[shift:] + targets[:shift]:
                    seed_value = index * 10 + writers
                    if kind != "pgbench" and cold:
                        await warm_up()
                        cold = False
                    if kind == "transfers":
                        entry = await measure_transfers(fx, writers, args.duration, seed_value)
                        line = f"{entry['transfers_per_s']:8.1f} transfers/s"
                    elif kind == "hold_release":
                        entry = await measure_pairs(fx, writers, args.duration, seed_value)
                        line = f"{entry['pairs_per_s']:8.1f} pairs/s    "
                    else:
                        await release_connections()
                        cold = True
                        entry = run_pgbench(backend.url, writers, args.pgbench_duration, workdir)
                        line = f"{entry['tps']:8.1f} tps        "
                    entry |= {"round": index + 1, "loadavg_after": h.loadavg()}
                    rounds[f"{kind}:{writers}"].append(entry)
                    errors = entry.get("errors") or entry.get("failed") or 0
                    print(
                        f"  round {index + 1}/{args.rounds} {kind:12s} x{writers:<3d}{line} "
                        f"p50 {_fmt(entry['p50_ms'])} p95 {_fmt(entry['p95_ms'])} ms  "
                        f"errors {errors}  client cpu {entry['client_cpu_fraction']:.0%}"
                    )

            print(f"  hot account: {GOAL_WRITERS} writers debit one wallet")
            hot = await hot_account(fx, writers_max, args.hot_funding, args.hot_extra)
            print(
                f"  hot account: {hot['succeeded']} moved, {hot['refused_insufficient_funds']} "
                f"refused, balance {hot['final_balance']}, {hot['transfers_per_s']:.1f} "
                f"transfers/s, correct: {hot['correct']}"
            )
            print(f"  profile: {args.profile_ops} sequential operations of each kind")
            profile = await profile_backend(fx, backend.url, backend.name, args.profile_ops, pool)
            async with database.read_sessions() as session:
                final = await check_ledger(session)
            return {
                "rounds": rounds,
                "hot_account": hot,
                "profile": profile,
                "final_ledger_check": {
                    k: v for k, v in final.as_dict().items() if k != "violations"
                }
                | {"violations": final.violations[:10]},
            }
        finally:
            await database.dispose()

    h.install_fast_loop()
    measured = asyncio.run(go())
    return summarize_backend(backend.name, measured, args) | info


def _fmt(value: float | None) -> str:
    return "    n/a" if value is None else f"{value:7.2f}"


# ---------------------------------------------------------------- summaries


TRANSFER_KEYS = ("transfers_per_s", "p50_ms", "p95_ms", "p99_ms")
PAIR_KEYS = (
    "pairs_per_s",
    "p50_ms",
    "p95_ms",
    "p99_ms",
    "hold_p50_ms",
    "hold_p95_ms",
    "release_p50_ms",
    "release_p95_ms",
)
PGBENCH_KEYS = ("tps", "p50_ms", "p95_ms", "p99_ms", "latency_average_ms")
CPU_KEYS = (
    "client_cpu_fraction",
    "client_cpu_ms_per_op",
    "postgres_cpu_ms_per_op",
    "postgres_cpu_cores",
    "machine_busy_cores",
    "other_cpu_ms_per_op",
)


def summary_of(rounds: list[dict[str, Any]], keys: tuple[str, ...]) -> dict[str, Any]:
    out: dict[str, Any] = {k: h.median_of(rounds, k) for k in keys}
    out[f"{keys[0]}_per_round"] = [r[keys[0]] for r in rounds]
    for key in CPU_KEYS:
        values = [r[key] for r in rounds if r.get(key) is not None]
        if values:
            out[key] = round(statistics.median(values), 4)
    out["errors"] = sum(int(r.get("errors", r.get("failed", 0))) for r in rounds)
    if any(r.get("retries") for r in rounds):
        out["retries"] = sum(int(r.get("retries", 0)) for r in rounds)
    return out | {"rounds": rounds}


def summarize_backend(
    name: str, measured: dict[str, Any], args: argparse.Namespace
) -> dict[str, Any]:
    rounds = measured["rounds"]
    out: dict[str, Any] = {"transfers": {}, "hold_release": {}}
    for w in args.writers:
        out["transfers"][str(w)] = summary_of(rounds[f"transfers:{w}"], TRANSFER_KEYS)
        out["hold_release"][str(w)] = summary_of(rounds[f"hold_release:{w}"], PAIR_KEYS)
    if f"pgbench:{args.writers[0]}" in rounds:
        out["pgbench"] = {}
        out["ratio"] = {}
        for w in args.writers:
            pg_rounds = rounds[f"pgbench:{w}"]
            out["pgbench"][str(w)] = summary_of(pg_rounds, PGBENCH_KEYS)
            hub_rounds = rounds[f"transfers:{w}"]
            per_round = [
                a["transfers_per_s"] / b["tps"] if b["tps"] else 0.0
                for a, b in zip(hub_rounds, pg_rounds, strict=True)
            ]
            hub_median = out["transfers"][str(w)]["transfers_per_s"]
            pg_median = out["pgbench"][str(w)]["tps"]
            pair_median = out["hold_release"][str(w)]["pairs_per_s"]
            out["ratio"][str(w)] = {
                "transfers_to_pgbench": round(statistics.median(per_round), 3),
                "per_round": [round(r, 3) for r in per_round],
                "of_medians": round(hub_median / pg_median, 3) if pg_median else None,
                "pairs_to_pgbench_of_medians": round(pair_median / pg_median, 3)
                if pg_median
                else None,
            }
    out["hot_account"] = measured["hot_account"]
    out["final_ledger_check"] = measured["final_ledger_check"]
    out["profile"] = measured["profile"]
    return out


# ---------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    configure_logs()
    machine = h.machine_info()
    started_at = h.now_iso()
    backends: dict[str, Any] = {}
    skipped: dict[str, str] = {}
    if "postgres" in args.backends and not Path(pgbench_path()).exists():
        raise SystemExit("pgbench is not installed (apt-get install -y postgresql-client)")
    with h.workspace() as workdir:
        for name in args.backends:
            with prepared_backend(name, workdir) as backend:
                if backend is None:
                    skipped[name] = "PostgreSQL unreachable"
                    continue
                print(f"{name}: {args.rounds} rounds; writers {args.writers}")
                backends[name] = bench_backend(backend, args, workdir)

    pg = backends.get("postgres")
    goal: dict[str, Any] = {
        "transfers_per_s_min": GOAL_TRANSFERS_PER_S,
        "writers": GOAL_WRITERS,
        "backend": "postgres",
    }
    if pg is not None and str(GOAL_WRITERS) in pg["transfers"]:
        rate = pg["transfers"][str(GOAL_WRITERS)]["transfers_per_s"]
        goal["measured_transfers_per_s"] = rate
        goal["throughput_met"] = rate is not None and rate >= GOAL_TRANSFERS_PER_S
        goal["hot_account_correct"] = pg["hot_account"]["correct"]
        goal["met"] = goal["throughput_met"] and goal["hot_account_correct"]
    results = {
        "benchmark": "ledger",
        "operations": {
            "transfer": "wallets.move (1 unit, two random wallets) in in_transaction",
            "hold_release": "escrow.hold (100 units) in one in_transaction, then escrow.release "
            f"(score {RELEASE_SCORE}, FeeRates(1000, 0)) in another: 2 transactions per pair",
            "pgbench": "pgbench -N (simple-update: UPDATE accounts, SELECT, INSERT history; "
            "no branch/teller updates), simple query protocol, scale "
            f"{PGBENCH_SCALE}, same scratch database",
            "hot_account": f"{max(args.writers)} writers all debit one wallet 1 unit, "
            f"{args.hot_extra} more times than it holds",
        },
        "timestamp": started_at,
        "finished": h.now_iso(),
        "machine": machine
        | {"loadavg_at_end": h.loadavg(), "pgbench": pgbench_version(), "event_loop": _loop()},
        "parameters": {
            "writers": args.writers,
            "duration_s": args.duration,
            "pgbench_duration_s": args.pgbench_duration,
            "warmup_s": args.warmup,
            "rounds": args.rounds,
            "wallets": args.wallets,
            "agents": args.agents,
            "hot_funding": args.hot_funding,
            "hot_extra": args.hot_extra,
            "profile_ops": args.profile_ops,
            "db_pool_size": max(args.writers),
            "db_max_overflow": 0,
            "quick": args.quick,
            "hub": "the service layer in the benchmark process, one event loop (no HTTP)",
        },
        "goal": goal,
        "summary_is": "median over rounds per figure; errors summed; ratio = hub transfers/s / "
        "pgbench TPS per round (same client count), median of rounds",
        "backends": backends,
        "skipped": skipped,
    }
    h.write_results(args.output, results)
    print_summary(results)
    return 0


def _loop() -> str:
    with contextlib.suppress(ImportError):
        import uvloop  # noqa: F401

        return "uvloop"
    return "asyncio"


def print_summary(results: dict[str, Any]) -> None:
    print(f"\nmedians of {results['parameters']['rounds']} rounds:")
    for name, b in results["backends"].items():
        for w, s in b["transfers"].items():
            ratio = b.get("ratio", {}).get(w)
            pg = b.get("pgbench", {}).get(w)
            extra = (
                f"  pgbench {pg['tps']:.1f} tps  ratio {ratio['transfers_to_pgbench']:.3f}"
                if ratio and pg
                else ""
            )
            print(
                f"  {name:8s} x{w:<3s} transfers {s['transfers_per_s']:8.1f}/s "
                f"p50 {_fmt(s['p50_ms'])} p95 {_fmt(s['p95_ms'])} ms{extra}"
            )
        for w, s in b["hold_release"].items():
            print(
                f"  {name:8s} x{w:<3s} hold+release {s['pairs_per_s']:6.1f}/s "
                f"p50 {_fmt(s['p50_ms'])} p95 {_fmt(s['p95_ms'])} ms"
            )
        hot = b["hot_account"]
        print(
            f"  {name:8s} hot account: {hot['transfers_per_s']:.1f} transfers/s, "
            f"correct {hot['correct']}; final ledger check ok {b['final_ledger_check']['ok']}"
        )
    goal = results["goal"]
    if "met" in goal:
        verdict = "met" if goal["met"] else "MISSED"
        print(
            f"goal (PostgreSQL, {GOAL_WRITERS} writers, >= {GOAL_TRANSFERS_PER_S:,.0f} "
            f"transfers/s, hot account correct): {verdict} "
            f"({goal['measured_transfers_per_s']:.1f} transfers/s)"
        )
    for name, why in results["skipped"].items():
        print(f"  {name:8s} skipped: {why}")


if __name__ == "__main__":
    sys.exit(main())
