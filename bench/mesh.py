"""The mesh under load: whole contract lifecycles per second, award latency, event fan-out.

Against the real hub (``hermes serve``, one worker) on SQLite and on PostgreSQL (+ Redis):

1. **Lifecycles**: N concurrent requesters (users), each looping: create a contract
   (``bidding_seconds=600``, so the scheduler stays out of it), three distinct agents of
   other owners bid, the requester awards, the winner delivers, the requester settles
   (score 1.0). Lifecycles/s, per-step latency, errors; then ``GET
   /api/v1/admin/ledger/check``.
2. **Award latency**: the bidders hold agent sockets (``GET /api/v1/ws/agent``); contracts
   with ``bidding_seconds=1`` get bids and no award call; the figure is the time from the
   contract's ``bidding_closes_at`` to the winner's socket receiving ``contract.awarded``.
3. **Fan-out**: 1,000 agent sockets with the capability, one ``POST`` contract, the delivery
   latency of ``contract.created`` at every socket, measured from just before the POST.

The HTTP client is a small keep-alive HTTP/1.1 client on asyncio streams (one connection
per requester), because httpx would need more CPU than the hub on this machine; the
client's CPU share is recorded. Sockets use ``websockets`` (the library's defaults).

    .venv/bin/python bench/mesh.py [--quick] [--backends sqlite,postgres]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import random
import re
import resource
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

import _harness as h
from hermes_hub.config import Settings
from ledger import PgBackendCpu, machine_busy_seconds

GOAL_LIFECYCLES_PER_S = 100.0
GOAL_AWARD_P99_MS = 100.0
GOAL_FANOUT_P99_MS = 250.0

CAP_LIFECYCLE = "bench-lifecycle"
CAP_AWARD = "bench-award"
CAP_FANOUT = "bench-fanout"
REWARD = 10  # credits per contract
# Whole credits: before commit f7e8a7a a fractional bid price made POST .../bid answer 500,
# and the results must stay comparable with runs of that time.
PRICE_RANGE = (5, REWARD)
GRANT = 1_000_000  # credits per requester: never runs dry
DELIVERY_WINDOW_S = 3600  # deadline_seconds: also gives awarded_at = deadline_at - window
HTTP_TIMEOUT_S = 30.0
# uvicorn closes a keep-alive connection idle for 5 s; reopen before that can race a request.
IDLE_REOPEN_S = 3.0
EVENT_WAIT_S = 10.0  # a socket event later than this counts as missing
SETUP_CONCURRENCY = 10
SOCKET_CONNECT_CONCURRENCY = 50
# PostgreSQL 15 backends publish their table counters when idle, at most every 10 s.
PG_STATS_SETTLE_S = 11.0
PROM_LINE = re.compile(r"^(hermes_http_request_duration_seconds_(?:sum|count))\{(.*)\} (\S+)$")
PROM_LABEL = re.compile(r'(\w+)="([^"]*)"')
STEPS = ("create", "bid", "award", "deliver", "settle")
PHASES = ("lifecycle", "award", "fanout")
REQUESTS_PER_LIFECYCLE = 7  # create, 3 bids, award, deliver, settle
T = TypeVar("T")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add = parser.add_argument
    add("--quick", action="store_true", help="a ~1 minute smoke run (small everything)")
    add("--backends", type=h.backends_arg, default=["sqlite", "postgres"], help="[sqlite,postgres]")
    add("--requesters", type=int, default=50, help="concurrent requesters [50]")
    add("--agent-pool", type=int, default=30, help="bidding agents, 3 random per contract [30]")
    add("--duration", type=float, default=15.0, help="seconds per lifecycle round [15]")
    add("--rounds", type=int, default=3, help="lifecycle rounds per backend [3]")
    add("--warmup", type=float, default=5.0, help="unrecorded lifecycle seconds first [5]")
    add("--award-samples", type=int, default=200, help="award latency samples [200]")
    add("--award-parallel", type=int, default=4, help="contracts in flight at once [4]")
    add("--award-agents", type=int, default=6, help="agents with sockets that bid [6]")
    add("--award-bids", type=int, default=3, help="bids per award contract [3]")
    add("--fanout-sockets", type=int, default=1000, help="agent sockets [1000]")
    add("--fanout-repeats", type=int, default=10, help="contracts posted to them [10]")
    add(
        "--heartbeat-seconds",
        type=float,
        default=Settings.model_fields["ws_heartbeat_seconds"].default,
        help="the hub's HERMES_WS_HEARTBEAT_SECONDS; also the idle measurement [15]",
    )
    add(
        "--ws-compression",
        choices=("deflate", "none"),
        default="deflate",
        help="per-message deflate on the client sockets (websockets' default) [deflate]",
    )
    add(
        "--redis-url",
        default="redis://127.0.0.1:6379/11",
        help="HERMES_REDIS_URL of the PostgreSQL hub ('' for none) [redis://127.0.0.1:6379/11]",
    )
    add(
        "--phases",
        type=phases_arg,
        default=list(PHASES),
        help="which measurements, comma-separated [lifecycle,award,fanout]",
    )
    add("--output", type=Path, default=h.RESULTS_DIR / "mesh.json", help="[results/mesh.json]")
    args = parser.parse_args(argv)
    if args.quick:
        args.requesters, args.agent_pool = 10, 9
        args.duration, args.rounds, args.warmup = 4.0, 1, 1.0
        args.award_samples, args.award_parallel = 12, 4
        args.fanout_sockets, args.fanout_repeats = 100, 3
        args.heartbeat_seconds = 3.0
        if args.output == h.RESULTS_DIR / "mesh.json":
            # A smoke run must not overwrite the real results.
            args.output = Path(tempfile.gettempdir()) / "hermes_bench_mesh_quick.json"
    if args.agent_pool < 3 or args.award_agents < args.award_bids:
        parser.error("need at least 3 pool agents and award-agents >= award-bids")
    return args


def phases_arg(value: str) -> list[str]:
    chosen = [p.strip() for p in value.split(",") if p.strip()]
    if not chosen or set(chosen) - set(PHASES):
        raise argparse.ArgumentTypeError(f"phases are {', '.join(PHASES)}, not {value!r}")
    return chosen


# ---------------------------------------------------------------- a cheap HTTP/1.1 client


class ApiError(Exception):
    def __init__(self, status: int, detail: str) -> None:
        super().__init__(f"{status}: {detail}")
        self.status = status
        self.detail = detail

    @property
    def kind(self) -> str:
        if self.status == 0:
            return self.detail
        try:
            code = json.loads(self.detail).get("code")
        except (ValueError, AttributeError):
            code = None
        return f"{self.status}" + (f" {code}" if code else "")


class Http:
    """One keep-alive HTTP/1.1 connection, one request at a time, JSON in and out.

    Hand-rolled for the reason ``_harness._raw_worker`` is: httpx costs more CPU per request
    than the hub's cheapest route, so it would measure itself. A broken connection is
    reopened on the next call; a request that failed is not retried (POSTs move money).
    """

    def __init__(self, base_url: str) -> None:
        host, _, port = base_url.removeprefix("http://").partition(":")
        self.host, self.port = host, int(port or 80)
        self._host_header = f"Host: {host}:{self.port}"
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._last_used = 0.0

    async def call(
        self,
        method: str,
        path: str,
        *,
        token: str | None = None,
        body: Any = None,
        expect: Iterable[int] = (200, 201),
    ) -> Any:
        payload = b"" if body is None else json.dumps(body, separators=(",", ":")).encode()
        lines = [f"{method} {path} HTTP/1.1", self._host_header, "Accept: application/json"]
        if token:
            lines.append(f"Authorization: Bearer {token}")
        if body is not None:
            lines.append("Content-Type: application/json")
        if body is not None or method != "GET":
            lines.append(f"Content-Length: {len(payload)}")
        request = ("\r\n".join(lines) + "\r\n\r\n").encode() + payload
        try:
            async with asyncio.timeout(HTTP_TIMEOUT_S):
                status, data, keep = await self._exchange(request)
        except (OSError, TimeoutError, asyncio.IncompleteReadError, ValueError) as exc:
            self.close()
            raise ApiError(0, type(exc).__name__) from exc
        if not keep:
            self.close()
        if status not in expect:
            raise ApiError(status, data.decode(errors="replace")[:500])
        return json.loads(data) if data else None

    async def _exchange(self, request: bytes) -> tuple[int, bytes, bool]:
        if time.monotonic() - self._last_used > IDLE_REOPEN_S:
            self.close()  # the server may be closing it right now (keep-alive timeout)
        self._last_used = time.monotonic()
        if self._writer is None:
            self._reader, self._writer = await asyncio.open_connection(self.host, self.port)
        reader, writer = self._reader, self._writer
        assert reader is not None
        writer.write(request)
        head = await reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        length, chunked, keep = 0, False, True
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            if name == b"content-length":
                length = int(value)
            elif name == b"transfer-encoding" and b"chunked" in value.lower():
                chunked = True
            elif name == b"connection" and b"close" in value.lower():
                keep = False
        if not chunked:
            return status, await reader.readexactly(length), keep
        parts = []
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
            chunk = await reader.readexactly(size + 2)
            if size == 0:
                return status, b"".join(parts), keep
            parts.append(chunk[:-2])

    async def get_text(self, path: str) -> str:
        """A GET whose answer is not JSON (the Prometheus page)."""
        request = f"GET {path} HTTP/1.1\r\n{self._host_header}\r\n\r\n".encode()
        async with asyncio.timeout(HTTP_TIMEOUT_S):
            status, data, keep = await self._exchange(request)
        if not keep:
            self.close()
        if status != 200:
            raise ApiError(status, data.decode(errors="replace")[:300])
        return data.decode()

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
        self._reader = self._writer = None


# ---------------------------------------------------------------- hub fixtures


@dataclass
class User:
    id: str
    token: str


@dataclass
class Agent:
    id: str
    key: str


@dataclass
class Hub:
    name: str
    server: h.Server
    cli_env: dict[str, str]
    database: str | None  # the PostgreSQL database name, for its statistics

    @property
    def base(self) -> str:
        return self.server.base_url

    @property
    def ws_base(self) -> str:
        return self.server.base_url.replace("http://", "ws://", 1)

    @property
    def pid(self) -> int:
        return self.server.process.pid


def start_hub(
    procs: h.Processes, *, name: str, workdir: Path, database_url: str, extra: dict[str, str]
) -> tuple[h.Server, dict[str, str]]:
    """``_harness.start_hub`` with settings of our own (the heartbeat); returns the env too."""
    data_dir = workdir / name
    data_dir.mkdir(parents=True, exist_ok=True)
    redis_url = extra.pop("HERMES_REDIS_URL", None)
    env = h.clean_env(h.hub_env(data_dir, database_url, redis_url) | extra)
    log_path = workdir / f"{name}.log"
    hermes = h.executable("hermes")
    with log_path.open("ab") as log:
        upgraded = subprocess.run(  # noqa: S603 - our own venv's command, no shell
            [hermes, "db", "upgrade"],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=h.REPO_ROOT,
            timeout=120,
            check=False,
        )
    if upgraded.returncode != 0:
        raise RuntimeError(f"'hermes db upgrade' failed for {name}:\n{log_path.read_text()}")
    port = h.free_port()
    proc = procs.start([hermes, "serve", "--port", str(port)], env=env, log_path=log_path)
    server = h.Server(name, f"http://{h.HOST}:{port}", proc, log_path)
    h.wait_healthy(server)
    return server, env


def create_admin(hub: Hub) -> tuple[str, str]:
    """``hermes admin create``, as the README tells an operator to; returns email, password."""
    email = f"bench-admin-{secrets.token_hex(4)}@example.com"
    password = secrets.token_urlsafe(24)
    done = subprocess.run(  # noqa: S603 - our own venv's command, no shell
        [h.executable("hermes"), "admin", "create", "--email", email, "--json"],
        env=hub.cli_env | {"HERMES_ADMIN_PASSWORD": password},
        capture_output=True,
        text=True,
        cwd=h.REPO_ROOT,
        timeout=60,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"'hermes admin create' failed: {done.stderr or done.stdout}")
    return email, password


async def login(http: Http, email: str, password: str) -> User:
    creds = {"email": email, "password": password}
    body = await http.call("POST", "/api/v1/auth/login", body=creds, expect=(200,))
    return User(id="", token=str(body["access_token"]))


async def register(http: Http) -> User:
    email = f"bench-{secrets.token_hex(6)}@example.com"
    password = secrets.token_urlsafe(18)
    creds = {"email": email, "password": password}
    created = await http.call("POST", "/api/v1/auth/register", body=creds, expect=(201,))
    body = await http.call("POST", "/api/v1/auth/login", body=creds, expect=(200,))
    return User(id=str(created["id"]), token=str(body["access_token"]))


async def grant(http: Http, admin: User, user: User, credits: int) -> None:
    await http.call(
        "POST",
        "/api/v1/admin/ledger/grants",
        token=admin.token,
        body={"user_id": user.id, "amount": credits, "reason": "mesh benchmark"},
        expect=(201,),
    )


async def enroll(http: Http, owner: User, capability: str) -> Agent:
    key = Ed25519PrivateKey.generate()
    payload = h.enroll_payload(key, name=f"{capability} agent") | {"capabilities": [capability]}
    challenge = await http.call(
        "POST", "/api/v1/agents/enroll", token=owner.token, body=payload, expect=(201,)
    )
    done = await http.call(
        "POST",
        f"/api/v1/agents/enroll/{challenge['enrollment_id']}/respond",
        body=h.respond_payload(key, challenge["challenge"]),
        expect=(201,),
    )
    return Agent(id=str(done["agent_id"]), key=str(done["api_key"]))


async def concurrently(
    base: str, count: int, make: Callable[[Http, int], Awaitable[T]], width: int
) -> list[T]:
    """``make(http, i)`` for i in range(count), ``width`` at a time, one connection each."""
    results: list[T | None] = [None] * count
    queue = iter(range(count))

    async def worker() -> None:
        http = Http(base)
        try:
            for index in queue:
                results[index] = await make(http, index)
        finally:
            http.close()

    await asyncio.gather(*(worker() for _ in range(min(width, count))))
    return [r for r in results if r is not None]


async def owners_and_agents(
    base: str, *, owners: int, agents: int, capability: str
) -> tuple[list[User], list[Agent]]:
    """``agents`` agents with ``capability``, spread over ``owners`` new users."""
    people = await concurrently(base, owners, lambda http, _: register(http), SETUP_CONCURRENCY)
    made = await concurrently(
        base,
        agents,
        lambda http, i: enroll(http, people[i % len(people)], capability),
        2 * SETUP_CONCURRENCY,
    )
    return people, made


# ---------------------------------------------------------------- statistics


def pct(values: Sequence[float], p: float) -> float | None:
    return h.percentile_ms(values, p)


def dist(values: Sequence[float]) -> dict[str, Any]:
    """Percentiles of milliseconds, rounded; null when nothing was measured."""
    return {
        "n": len(values),
        "p50_ms": pct(values, 50),
        "p95_ms": pct(values, 95),
        "p99_ms": pct(values, 99),
        "max_ms": round(max(values), 3) if values else None,
        "mean_ms": round(statistics.fmean(values), 3) if values else None,
    }


def epoch(iso: str) -> float:
    return datetime.fromisoformat(iso).timestamp()


async def scrape_route_times(http: Http) -> dict[str, tuple[float, float]]:
    """Per ``METHOD route``: (seconds summed, requests) from the hub's /metrics."""
    http_text = await http.get_text("/metrics")
    found: dict[str, list[float]] = {}
    for line in http_text.splitlines():
        match = PROM_LINE.match(line)
        if not match:
            continue
        labels = dict(PROM_LABEL.findall(match.group(2)))
        key = f"{labels.get('method')} {labels.get('route')}"
        slot = found.setdefault(key, [0.0, 0.0])
        slot[0 if match.group(1).endswith("_sum") else 1] += float(match.group(3))
    return {k: (v[0], v[1]) for k, v in found.items()}


def route_means(
    before: dict[str, tuple[float, float]], after: dict[str, tuple[float, float]]
) -> dict[str, dict[str, float]]:
    """Server-side mean time per route between two scrapes (the hub's own middleware clock)."""
    out: dict[str, dict[str, float]] = {}
    for key, (total, count) in after.items():
        total0, count0 = before.get(key, (0.0, 0.0))
        n = count - count0
        if n > 0 and "/mesh/" in key:
            out[key] = {"requests": int(n), "server_mean_ms": round(1000 * (total - total0) / n, 3)}
    return out


async def pg_counters(database: str | None) -> dict[str, Any] | None:
    """Transaction and per-table row counters of the scratch database (pg_stat views)."""
    if database is None:
        return None
    import asyncpg

    admin = h._asyncpg_kwargs(os.environ.get("HERMES_BENCH_DATABASE_URL", h.DEFAULT_PG_URL))
    conn = await asyncpg.connect(**(admin | {"database": database}), timeout=5)
    try:
        db = await conn.fetchrow(
            "SELECT xact_commit, xact_rollback, tup_inserted, tup_updated, tup_deleted, "
            "tup_returned, tup_fetched, blks_read, blks_hit, deadlocks "
            "FROM pg_stat_database WHERE datname = current_database()"
        )
        tables = await conn.fetch(
            "SELECT relname, n_tup_ins, n_tup_upd, n_tup_del, seq_scan, idx_scan "
            "FROM pg_stat_user_tables"
        )
    finally:
        await conn.close()
    return {
        "database": dict(db) if db else {},
        "tables": {
            row["relname"]: {k: int(v or 0) for k, v in row.items() if k != "relname"}
            for row in tables
        },
    }


def pg_per_lifecycle(
    before: dict[str, Any] | None, after: dict[str, Any] | None, lifecycles: int
) -> dict[str, Any] | None:
    if before is None or after is None or not lifecycles:
        return None

    def per(new: int, old: int) -> float:
        return round((new - old) / lifecycles, 2)

    db = {k: per(int(v), int(before["database"].get(k, 0))) for k, v in after["database"].items()}
    tables: dict[str, dict[str, float]] = {}
    for name, row in after["tables"].items():
        old = before["tables"].get(name, {})
        moved = {k: per(v, old.get(k, 0)) for k, v in row.items()}
        if any(moved.values()):
            tables[name] = moved
    return {"lifecycles": lifecycles, "database": db, "tables": tables}


# ---------------------------------------------------------------- 1. lifecycles


@dataclass
class LifecycleTally:
    steps: dict[str, list[float]] = field(default_factory=lambda: {s: [] for s in STEPS})
    totals: list[float] = field(default_factory=list)
    finished_at: list[float] = field(default_factory=list)
    # When each successful request ended: a lifecycle is 7 of them.
    request_done_at: list[float] = field(default_factory=list)
    errors: Counter[str] = field(default_factory=Counter)


@dataclass
class LifecycleFixture:
    admin: User
    requesters: list[User]
    pool: list[Agent]


async def one_lifecycle(
    http: Http, requester: User, fx: LifecycleFixture, rng: random.Random, tally: LifecycleTally
) -> None:
    steps: dict[str, list[float]] = {s: [] for s in STEPS}
    step = "create"
    started = time.perf_counter()
    try:
        t0 = started
        contract = await http.call(
            "POST",
            "/api/v1/mesh/contracts",
            token=requester.token,
            body={
                "intent": "Summarize the attached quarterly report in five bullet points.",
                "capability": CAP_LIFECYCLE,
                "reward": REWARD,
                "bidding_seconds": 600,
                "deadline_seconds": DELIVERY_WINDOW_S,
            },
            expect=(201,),
        )
        steps["create"].append(time.perf_counter() - t0)
        tally.request_done_at.append(time.perf_counter())
        path = f"/api/v1/mesh/contracts/{contract['id']}"
        by_id = {}
        step = "bid"
        for agent in rng.sample(fx.pool, 3):
            by_id[agent.id] = agent
            t0 = time.perf_counter()
            await http.call(
                "POST",
                f"{path}/bid",
                token=agent.key,
                body={
                    "price": rng.randint(*PRICE_RANGE),
                    "eta_seconds": rng.randint(10, 600),
                    "confidence": round(rng.uniform(0.6, 1.0), 2),
                },
                expect=(201,),
            )
            steps["bid"].append(time.perf_counter() - t0)
            tally.request_done_at.append(time.perf_counter())
        step = "award"
        t0 = time.perf_counter()
        award = await http.call("POST", f"{path}/award", token=requester.token, expect=(200,))
        steps["award"].append(time.perf_counter() - t0)
        tally.request_done_at.append(time.perf_counter())
        winner = by_id[award["winner"]["agent_id"]]
        step = "deliver"
        t0 = time.perf_counter()
        await http.call(
            "POST",
            f"{path}/deliver",
            token=winner.key,
            body={"data": {"summary": ["revenue up", "costs flat", "margin up"]}},
            expect=(200,),
        )
        steps["deliver"].append(time.perf_counter() - t0)
        tally.request_done_at.append(time.perf_counter())
        step = "settle"
        t0 = time.perf_counter()
        settled = await http.call(
            "POST",
            f"{path}/settle",
            token=requester.token,
            body={"validation_score": 1.0, "rating": 5},
            expect=(200,),
        )
        steps["settle"].append(time.perf_counter() - t0)
        tally.request_done_at.append(time.perf_counter())
        if settled["status"] != "settled":
            raise ApiError(200, json.dumps({"code": f"status_{settled['status']}"}))
    except ApiError as exc:
        tally.errors[f"{step}: {exc.kind}"] += 1
        return
    except (KeyError, TypeError) as exc:
        tally.errors[f"{step}: unexpected body ({exc!r})"] += 1
        return
    done = time.perf_counter()
    for name, values in steps.items():
        tally.steps[name].extend(values)
    tally.totals.append(done - started)
    tally.finished_at.append(done)


async def run_lifecycles(
    base: str, fx: LifecycleFixture, *, seconds: float, seed: int
) -> tuple[LifecycleTally, float, float]:
    """Every requester loops lifecycles until ``seconds`` pass; returns tally, start, end."""
    tally = LifecycleTally()
    started = time.perf_counter()
    deadline = started + seconds

    async def requester_loop(index: int, requester: User) -> None:
        rng = random.Random(seed * 1000 + index)
        http = Http(base)
        try:
            while time.perf_counter() < deadline:
                await one_lifecycle(http, requester, fx, rng, tally)
        finally:
            http.close()

    await asyncio.gather(*(requester_loop(i, r) for i, r in enumerate(fx.requesters)))
    return tally, started, deadline


def lifecycle_round(tally: LifecycleTally, started: float, deadline: float) -> dict[str, Any]:
    seconds = deadline - started
    in_window = sum(1 for t in tally.finished_at if t <= deadline)
    requests = sum(1 for t in tally.request_done_at if t <= deadline)
    ms = {name: [1000 * v for v in values] for name, values in tally.steps.items()}
    return {
        # Requests answered in the window / 7. Whole lifecycles come in waves (50 requesters
        # in step finish ~3 each per round), which would quantize the rate to 50/15 s.
        "lifecycles_per_s": round(requests / REQUESTS_PER_LIFECYCLE / seconds, 2),
        "whole_lifecycles_per_s": round(in_window / seconds, 2),
        "lifecycles": in_window,
        "finished_after_window": len(tally.finished_at) - in_window,
        "requests_per_s": round(requests / seconds, 1),
        "lifecycle": dist([1000 * v for v in tally.totals]),
        "steps": {name: dist(values) for name, values in ms.items()},
        "errors": sum(tally.errors.values()),
        "error_detail": dict(tally.errors),
        "duration_s": round(seconds, 3),
    }


async def lifecycle_phase(
    hub: Hub, fx: LifecycleFixture, args: argparse.Namespace
) -> dict[str, Any]:
    http = Http(hub.base)
    if args.warmup > 0:
        warm, _, _ = await run_lifecycles(hub.base, fx, seconds=args.warmup, seed=0)
        print(f"  warm-up: {len(warm.totals)} lifecycles, errors {dict(warm.errors) or 0}")
    pg_before = await pg_counters(hub.database)
    lifecycles_done = 0
    rounds = []
    for index in range(args.rounds):
        scrape0 = await scrape_route_times(http)
        server0 = h.process_cpu_seconds(hub.pid)
        machine0 = machine_busy_seconds()
        client0 = time.process_time()
        with PgBackendCpu(hub.database) as pg_cpu:
            tally, started, deadline = await run_lifecycles(
                hub.base, fx, seconds=args.duration, seed=index + 1
            )
        wall = time.perf_counter() - started
        client = time.process_time() - client0
        server1 = h.process_cpu_seconds(hub.pid)
        machine1 = machine_busy_seconds()
        scrape1 = await scrape_route_times(http)
        result = lifecycle_round(tally, started, deadline)
        done = len(tally.totals)
        lifecycles_done += done
        result["client_cpu_fraction"] = round(client / wall, 3)
        result["client_cpu_ms_per_lifecycle"] = round(1000 * client / max(done, 1), 3)
        if server0 is not None and server1 is not None:
            result["server_cpu_fraction"] = round((server1 - server0) / wall, 3)
            result["server_cpu_ms_per_lifecycle"] = round(
                1000 * (server1 - server0) / max(done, 1), 3
            )
        if pg_cpu.seconds is not None:
            result["postgres_cpu_fraction"] = round(pg_cpu.seconds / wall, 3)
            result["postgres_cpu_ms_per_lifecycle"] = round(1000 * pg_cpu.seconds / max(done, 1), 3)
        if machine0 is not None and machine1 is not None:
            result["machine_busy_cores"] = round((machine1 - machine0) / wall, 3)
        result["server_side_mean_ms"] = route_means(scrape0, scrape1)
        result["loadavg_after"] = h.loadavg()
        rounds.append(result | {"round": index + 1})
        print(
            f"  round {index + 1}/{args.rounds}: {result['lifecycles_per_s']:7.1f} lifecycles/s  "
            f"p50 {result['lifecycle']['p50_ms']} ms  p99 {result['lifecycle']['p99_ms']} ms  "
            f"errors {result['errors']}  server cpu {result.get('server_cpu_fraction')}  "
            f"client cpu {result['client_cpu_fraction']}"
        )
    pg_stats = None
    if hub.database is not None:
        await asyncio.sleep(PG_STATS_SETTLE_S)
        pg_stats = pg_per_lifecycle(pg_before, await pg_counters(hub.database), lifecycles_done)
    check = await http.call("GET", "/api/v1/admin/ledger/check", token=fx.admin.token)
    http.close()
    summary = summarize_lifecycles(rounds)
    print(f"  ledger check after the rounds: ok={check['ok']} ({check['transfers']} transfers)")
    return summary | {
        "ledger_check": {
            k: check[k] for k in ("ok", "accounts", "transfers", "holds", "violations")
        },
        "postgres_counters_per_lifecycle": pg_stats,
        "rounds": rounds,
    }


def summarize_lifecycles(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    def med(get: Callable[[dict[str, Any]], Any]) -> float | None:
        values = [get(r) for r in rounds if get(r) is not None]
        return round(statistics.median(values), 3) if values else None

    out: dict[str, Any] = {
        "lifecycles_per_s": med(lambda r: r["lifecycles_per_s"]),
        "lifecycles_per_s_min": min(r["lifecycles_per_s"] for r in rounds),
        "whole_lifecycles_per_s": med(lambda r: r["whole_lifecycles_per_s"]),
        "lifecycle_p50_ms": med(lambda r: r["lifecycle"]["p50_ms"]),
        "lifecycle_p95_ms": med(lambda r: r["lifecycle"]["p95_ms"]),
        "lifecycle_p99_ms": med(lambda r: r["lifecycle"]["p99_ms"]),
        "steps": {
            step: {
                k: med(lambda r, step=step, k=k: r["steps"][step][k])
                for k in ("p50_ms", "p95_ms", "p99_ms")
            }
            for step in STEPS
        },
        "errors": sum(r["errors"] for r in rounds),
    }
    for key in (
        "client_cpu_fraction",
        "server_cpu_fraction",
        "server_cpu_ms_per_lifecycle",
        "postgres_cpu_ms_per_lifecycle",
        "machine_busy_cores",
    ):
        out[key] = med(lambda r, key=key: r.get(key))
    return out


# ---------------------------------------------------------------- sockets


@dataclass
class Fleet:
    """Agent sockets, each read by its own task; ``on_message`` sees every message first."""

    on_message: Callable[[Agent, dict[str, Any], float], None]
    sockets: list[tuple[Agent, ClientConnection]] = field(default_factory=list)
    readers: list[asyncio.Task[None]] = field(default_factory=list)
    pings: list[float] = field(default_factory=list)
    closed_early: int = 0
    connect_errors: Counter[str] = field(default_factory=Counter)

    async def open(self, ws_base: str, agents: Sequence[Agent], compression: str) -> float:
        """Connect every agent (a few at a time); returns the seconds it took."""
        started = time.perf_counter()
        gate = asyncio.Semaphore(SOCKET_CONNECT_CONCURRENCY)

        async def one(agent: Agent) -> None:
            async with gate:
                try:
                    ws = await connect(
                        f"{ws_base}/api/v1/ws/agent",
                        additional_headers={"Authorization": f"Bearer {agent.key}"},
                        compression="deflate" if compression == "deflate" else None,
                        ping_interval=None,  # the hub sends its own heartbeat
                        open_timeout=60,
                        max_queue=None,
                    )
                    hello = json.loads(await asyncio.wait_for(ws.recv(), 60))
                except (OSError, TimeoutError, ConnectionClosed, ValueError) as exc:
                    self.connect_errors[type(exc).__name__] += 1
                    return
                if hello.get("type") != "hello":
                    self.connect_errors[f"first message {hello.get('type')}"] += 1
                    await ws.close()
                    return
            self.sockets.append((agent, ws))
            self.readers.append(asyncio.create_task(self._read(agent, ws)))

        await asyncio.gather(*(one(a) for a in agents))
        return time.perf_counter() - started

    async def _read(self, agent: Agent, ws: ClientConnection) -> None:
        try:
            async for raw in ws:
                now = time.time()
                message = json.loads(raw)
                if message.get("type") == "ping":
                    self.pings.append(now)
                    continue
                self.on_message(agent, message, now)
        except ConnectionClosed:
            pass
        self.closed_early += 1

    async def close(self) -> None:
        for task in self.readers:
            task.cancel()
        await asyncio.gather(*self.readers, return_exceptions=True)
        gate = asyncio.Semaphore(2 * SOCKET_CONNECT_CONCURRENCY)

        async def shut(ws: ClientConnection) -> None:
            async with gate:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(ws.close(), 10)

        await asyncio.gather(*(shut(ws) for _, ws in self.sockets))


# ---------------------------------------------------------------- 2. award latency


async def award_phase(
    hub: Hub, requester: User, agents: list[Agent], args: argparse.Namespace
) -> dict[str, Any]:
    winners: dict[str, asyncio.Future[tuple[float, str, dict[str, Any]]]] = {}

    def on_message(agent: Agent, message: dict[str, Any], now: float) -> None:
        data = message.get("data") or {}
        if message.get("type") == "contract.awarded" and data.get("role") == "winner":
            waiter = winners.get(str(data.get("contract_id")))
            if waiter is not None and not waiter.done():
                waiter.set_result((now, agent.id, data))

    fleet = Fleet(on_message)
    await fleet.open(hub.ws_base, agents, args.ws_compression)
    if fleet.connect_errors:
        raise RuntimeError(f"award sockets failed to connect: {dict(fleet.connect_errors)}")
    latency: list[float] = []
    scheduler_lag: list[float] = []
    push: list[float] = []
    errors: Counter[str] = Counter()
    rng = random.Random(7)
    loop = asyncio.get_running_loop()

    async def chain(index: int, count: int) -> None:
        await asyncio.sleep(index / args.award_parallel)  # stagger the closing times
        http = Http(hub.base)
        try:
            for _ in range(count):
                await one_award(http)
        finally:
            http.close()

    async def one_award(http: Http) -> None:
        try:
            contract = await http.call(
                "POST",
                "/api/v1/mesh/contracts",
                token=requester.token,
                body={
                    "intent": "Translate this paragraph into French.",
                    "capability": CAP_AWARD,
                    "reward": REWARD,
                    "bidding_seconds": 1,
                    "deadline_seconds": DELIVERY_WINDOW_S,
                },
                expect=(201,),
            )
            waiter = winners[contract["id"]] = loop.create_future()
            for agent in rng.sample(agents, args.award_bids):
                await http.call(
                    "POST",
                    f"/api/v1/mesh/contracts/{contract['id']}/bid",
                    token=agent.key,
                    body={
                        "price": rng.randint(*PRICE_RANGE),
                        "eta_seconds": rng.randint(10, 600),
                        "confidence": round(rng.uniform(0.6, 1.0), 2),
                    },
                    expect=(201,),
                )
        except ApiError as exc:
            errors[f"setup: {exc.kind}"] += 1
            return
        try:
            received, _, data = await asyncio.wait_for(waiter, 1 + EVENT_WAIT_S)
        except TimeoutError:
            errors["no contract.awarded at the winner within 10 s"] += 1
            return
        closes = epoch(contract["bidding_closes_at"])
        awarded = epoch(data["deadline_at"]) - DELIVERY_WINDOW_S
        latency.append(1000 * (received - closes))
        scheduler_lag.append(1000 * (awarded - closes))
        push.append(1000 * (received - awarded))

    per_chain = [args.award_samples // args.award_parallel] * args.award_parallel
    for i in range(args.award_samples % args.award_parallel):
        per_chain[i] += 1
    started = time.perf_counter()
    await asyncio.gather(*(chain(i, n) for i, n in enumerate(per_chain)))
    elapsed = time.perf_counter() - started
    await fleet.close()
    result = {
        "samples": len(latency),
        "close_to_winner_socket": dist(latency),
        # awarded_at is the scheduler's clock reading when it ran the award (deadline_at
        # minus the delivery window): close -> that is the scheduler's wake-up lag,
        # that -> socket is the award transaction, commit and push.
        "close_to_awarded_at": dist(scheduler_lag),
        "awarded_at_to_winner_socket": dist(push),
        "errors": sum(errors.values()),
        "error_detail": dict(errors),
        "duration_s": round(elapsed, 1),
        "sockets": len(fleet.sockets),
        "samples_ms": {
            "close_to_winner_socket": [round(x, 1) for x in latency],
            "close_to_awarded_at": [round(x, 1) for x in scheduler_lag],
        },
    }
    top = result["close_to_winner_socket"]
    print(
        f"  award latency: n={top['n']} p50 {top['p50_ms']} p95 {top['p95_ms']} "
        f"p99 {top['p99_ms']} max {top['max_ms']} ms  (scheduler lag p50 "
        f"{result['close_to_awarded_at']['p50_ms']} ms)  errors {result['errors']}"
    )
    return result


# ---------------------------------------------------------------- 3. fan-out


async def idle_cost(hub: Hub, fleet: Fleet, seconds: float) -> dict[str, Any]:
    """What the open sockets cost an idle hub over one heartbeat period (every socket pings
    once): server CPU, and PostgreSQL's."""
    pings0 = len(fleet.pings)
    cpu0 = h.process_cpu_seconds(hub.pid)
    with PgBackendCpu(hub.database) as pg_cpu:
        await asyncio.sleep(seconds)
    cpu1 = h.process_cpu_seconds(hub.pid)
    pings = len(fleet.pings) - pings0
    out: dict[str, Any] = {"seconds": seconds, "pings": pings}
    if cpu0 is not None and cpu1 is not None:
        out["server_cpu_fraction"] = round((cpu1 - cpu0) / seconds, 3)
        out["server_cpu_ms_per_heartbeat"] = round(1000 * (cpu1 - cpu0) / max(pings, 1), 3)
    if pg_cpu.seconds is not None:
        out["postgres_cpu_ms_per_heartbeat"] = round(1000 * pg_cpu.seconds / max(pings, 1), 3)
    print(
        f"  idle for {seconds:g} s with the sockets open: {pings} pings, server cpu "
        f"{out.get('server_cpu_fraction')} of a core "
        f"({out.get('server_cpu_ms_per_heartbeat')} ms per heartbeat)"
    )
    return out


async def fanout_phase(
    hub: Hub, requester: User, agents: list[Agent], args: argparse.Namespace
) -> dict[str, Any]:
    received: dict[str, list[float]] = {}
    everyone = asyncio.Event()
    expected = [0]

    def on_message(_agent: Agent, message: dict[str, Any], now: float) -> None:
        if message.get("type") != "contract.created":
            return
        times = received.setdefault(str((message.get("data") or {}).get("contract_id")), [])
        times.append(now)
        if len(times) >= expected[0]:
            everyone.set()

    fleet = Fleet(on_message)
    connect_s = await fleet.open(hub.ws_base, agents, args.ws_compression)
    expected[0] = len(fleet.sockets)
    print(
        f"  {len(fleet.sockets)} sockets open in {connect_s:.1f} s"
        + (f", failures {dict(fleet.connect_errors)}" if fleet.connect_errors else "")
    )
    await asyncio.sleep(1.0)  # let the connect burst (presence, first reads) settle
    idle = await idle_cost(hub, fleet, args.heartbeat_seconds)
    http = Http(hub.base)
    repeats = []
    from_send: list[float] = []
    from_response: list[float] = []
    try:
        for index in range(args.fanout_repeats):
            everyone.clear()
            server0 = h.process_cpu_seconds(hub.pid)
            client0 = time.process_time()
            sent = time.time()
            contract = await http.call(
                "POST",
                "/api/v1/mesh/contracts",
                token=requester.token,
                body={
                    "intent": "Classify these support tickets by urgency.",
                    "capability": CAP_FANOUT,
                    "reward": REWARD,
                    "bidding_seconds": 3600,
                },
                expect=(201,),
            )
            answered = time.time()
            times = received.setdefault(contract["id"], [])
            if len(times) < expected[0]:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(everyone.wait(), EVENT_WAIT_S)
            waited = time.time() - sent
            client = time.process_time() - client0
            server1 = h.process_cpu_seconds(hub.pid)
            lat_send = [1000 * (t - sent) for t in times]
            lat_resp = [1000 * (t - answered) for t in times]
            from_send += lat_send
            from_response += lat_resp
            heartbeats = sum(1 for t in fleet.pings if sent - 1.0 <= t <= sent + waited)
            repeat = {
                "received": len(times),
                "sockets": expected[0],
                "post_ms": round(1000 * (answered - sent), 3),
                "from_send": dist(lat_send),
                "from_response": dist(lat_resp),
                "client_cpu_ms": round(1000 * client, 1),
                "server_cpu_ms": round(1000 * (server1 - server0), 1)
                if server0 is not None and server1 is not None
                else None,
                "heartbeat_pings_nearby": heartbeats,
                "latencies_ms": lat_send,
            }
            repeats.append(repeat)
            print(
                f"  fan-out {index + 1}/{args.fanout_repeats}: {len(times)}/{expected[0]} "
                f"received, POST {repeat['post_ms']:.0f} ms, p50 {repeat['from_send']['p50_ms']} "
                f"p99 {repeat['from_send']['p99_ms']} max {repeat['from_send']['max_ms']} ms "
                f"(client cpu {repeat['client_cpu_ms']} ms, pings nearby {heartbeats})"
            )
            await asyncio.sleep(1.0 + random.random())  # jitter against the heartbeat period
    finally:
        http.close()
        await fleet.close()
    quiet = [x for r in repeats if not r["heartbeat_pings_nearby"] for x in r["latencies_ms"]]
    for r in repeats:
        del r["latencies_ms"]
    total_expected = expected[0] * len(repeats)
    got = sum(r["received"] for r in repeats)
    return {
        "sockets_requested": len(agents),
        "sockets_connected": expected[0],
        "connect_seconds": round(connect_s, 2),
        "connect_errors": dict(fleet.connect_errors),
        "repeats": len(repeats),
        "received": got,
        "expected": total_expected,
        "all_received": got == total_expected,
        "from_send": dist(from_send),
        "from_response": dist(from_response),
        # Repeats during which no socket got a heartbeat ping: the fan-out alone.
        "from_send_without_heartbeats": dist(quiet),
        "idle_with_sockets_open": idle,
        "median_of_repeat_p99_ms": round(
            statistics.median(r["from_send"]["p99_ms"] for r in repeats if r["received"]), 3
        )
        if any(r["received"] for r in repeats)
        else None,
        "post_ms": dist([r["post_ms"] for r in repeats]),
        "sockets_closed_by_server": fleet.closed_early,
        "per_repeat": repeats,
    }


# ---------------------------------------------------------------- one backend


async def bench_hub(hub: Hub, args: argparse.Namespace) -> dict[str, Any]:
    out: dict[str, Any] = {}
    setup_started = time.perf_counter()
    email, password = await asyncio.to_thread(create_admin, hub)
    http = Http(hub.base)
    admin = await login(http, email, password)
    requesters = await concurrently(
        hub.base, args.requesters, lambda c, _: register(c), SETUP_CONCURRENCY
    )
    await concurrently(
        hub.base,
        len(requesters),
        lambda c, i: grant(c, admin, requesters[i], GRANT),
        SETUP_CONCURRENCY,
    )
    _, pool = await owners_and_agents(
        hub.base,
        owners=max(3, args.agent_pool // 10),
        agents=args.agent_pool,
        capability=CAP_LIFECYCLE,
    )
    out["setup_seconds"] = round(time.perf_counter() - setup_started, 1)
    print(
        f"  set up {len(requesters)} requesters and {len(pool)} agents in {out['setup_seconds']} s"
    )

    fx = LifecycleFixture(admin=admin, requesters=requesters, pool=pool)
    if "lifecycle" in args.phases:
        out["lifecycle"] = await lifecycle_phase(hub, fx, args)

    if "award" in args.phases:
        _, award_agents = await owners_and_agents(
            hub.base, owners=2, agents=args.award_agents, capability=CAP_AWARD
        )
        out["award_latency"] = await award_phase(hub, requesters[0], award_agents, args)

    if "fanout" in args.phases:
        out["fanout"] = await fanout_with_agents(hub, requesters[0], args)

    final = await http.call("GET", "/api/v1/admin/ledger/check", token=admin.token)
    out["final_ledger_check"] = {k: final[k] for k in ("ok", "transfers", "holds", "violations")}
    http.close()
    return out


async def fanout_with_agents(hub: Hub, requester: User, args: argparse.Namespace) -> dict[str, Any]:
    started = time.perf_counter()
    _, fan_agents = await owners_and_agents(
        hub.base,
        owners=max(1, math.ceil(args.fanout_sockets / 100)),
        agents=args.fanout_sockets,
        capability=CAP_FANOUT,
    )
    enrolled_s = time.perf_counter() - started
    print(f"  enrolled {len(fan_agents)} fan-out agents in {enrolled_s:.1f} s")
    result = await fanout_phase(hub, requester, fan_agents, args)
    return result | {"enroll_seconds": round(enrolled_s, 1)}


def raise_open_files(sockets: int) -> dict[str, int]:
    """Room for every socket on both ends (client here, server inherits it) plus the pool."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = 2 * sockets + 1024
    if soft < want:
        target = want if hard == resource.RLIM_INFINITY else min(want, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < want:
        print(f"warning: open files limited to {soft}; {want} wanted for {sockets} sockets")
    return {"soft": soft, "hard": hard}


def goals(backends: dict[str, Any]) -> dict[str, Any]:
    met: dict[str, Any] = {}
    for name, data in backends.items():
        verdicts: dict[str, Any] = {}
        if "lifecycle" in data:
            life = data["lifecycle"]
            rate = life["lifecycles_per_s"]
            verdicts["lifecycles_per_s"] = {
                "goal": f">= {GOAL_LIFECYCLES_PER_S:g}/s"
                + ("" if name == "postgres" else " (set for PostgreSQL; shown for comparison)"),
                "value": rate,
                "met": rate is not None
                and rate >= GOAL_LIFECYCLES_PER_S
                and life["errors"] == 0
                and life["ledger_check"]["ok"],
            }
        if "award_latency" in data:
            award = data["award_latency"]
            p99 = award["close_to_winner_socket"]["p99_ms"]
            verdicts["award_p99_ms"] = {
                "goal": f"< {GOAL_AWARD_P99_MS:g} ms",
                "value": p99,
                "met": p99 is not None and p99 < GOAL_AWARD_P99_MS and award["errors"] == 0,
            }
        if "fanout" in data:
            fan = data["fanout"]
            p99 = fan["from_send"]["p99_ms"]
            verdicts["fanout_p99_ms"] = {
                "goal": f"< {GOAL_FANOUT_P99_MS:g} ms, every socket served",
                "value": p99,
                "met": p99 is not None and p99 < GOAL_FANOUT_P99_MS and fan["all_received"],
            }
        met[name] = verdicts
    return met


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    began = time.perf_counter()
    machine = h.machine_info()
    started_at = h.now_iso()
    limits = raise_open_files(args.fanout_sockets)
    backends: dict[str, Any] = {}
    skipped: dict[str, str] = {}
    h.install_fast_loop()
    with h.workspace() as workdir:
        for backend in args.backends:
            with contextlib.ExitStack() as stack, h.Processes() as procs:
                redis_url: str | None = None
                database: str | None = None
                if backend == "sqlite":
                    url = f"sqlite+aiosqlite:///{workdir / 'sqlite' / 'hermes.db'}"
                    info: dict[str, Any] = {
                        "database": "SQLite file (WAL) in a temporary directory"
                    }
                else:
                    admin_url = os.environ.get("HERMES_BENCH_DATABASE_URL", h.DEFAULT_PG_URL)
                    pg = stack.enter_context(h.scratch_postgres(admin_url))
                    if pg is None:
                        skipped[backend] = "PostgreSQL unreachable"
                        continue
                    url, version = pg
                    database = url.rsplit("/", 1)[1]
                    redis_url = args.redis_url or None
                    info = {
                        "database": f"PostgreSQL {version}, scratch database on 127.0.0.1",
                        "redis": redis_url,
                    }
                extra = {"HERMES_WS_HEARTBEAT_SECONDS": f"{args.heartbeat_seconds:g}"}
                if redis_url:
                    extra["HERMES_REDIS_URL"] = redis_url
                server, env = start_hub(
                    procs, name=backend, workdir=workdir, database_url=url, extra=extra
                )
                hub = Hub(backend, server, env, database)
                print(f"{backend}: hub at {hub.base}")
                backend_started = time.perf_counter()
                try:
                    data = asyncio.run(bench_hub(hub, args))
                except Exception:
                    print(f"{backend} hub log:\n{server.log_tail()}")
                    raise
                data["seconds"] = round(time.perf_counter() - backend_started, 1)
                info["server_log_warnings"] = server.log_events()
                backends[backend] = info | data

    defaults = Settings.model_fields
    results = {
        "benchmark": "mesh",
        "timestamp": started_at,
        "finished": h.now_iso(),
        "run_seconds": round(time.perf_counter() - began, 1),
        "machine": machine | {"loadavg_at_end": h.loadavg(), "open_files": limits},
        "parameters": {
            "quick": args.quick,
            "phases": args.phases,
            "requesters": args.requesters,
            "agent_pool": args.agent_pool,
            "bids_per_contract": 3,
            "lifecycle_requests": "create, 3 bids, award, deliver, settle (7 requests)",
            "lifecycle_round_seconds": args.duration,
            "lifecycle_rounds": args.rounds,
            "lifecycle_warmup_seconds": args.warmup,
            "reward_credits": REWARD,
            "award_samples": args.award_samples,
            "award_parallel": args.award_parallel,
            "award_agents": args.award_agents,
            "award_bids_per_contract": args.award_bids,
            "fanout_sockets": args.fanout_sockets,
            "fanout_repeats": args.fanout_repeats,
            "ws_client": "websockets (asyncio client), ping_interval=None, "
            f"compression={args.ws_compression}",
            "http_client": "keep-alive HTTP/1.1 on asyncio streams, one connection per requester",
            "server_workers": 1,
            "db_pool_size": defaults["db_pool_size"].default,
            "db_max_overflow": defaults["db_max_overflow"].default,
            "ws_heartbeat_seconds": args.heartbeat_seconds,
            "rate_limits": h.GENEROUS_LIMIT,
            "idempotency_keys": "not sent",
        },
        "summary_is": "lifecycle: medians over rounds; latencies in ms; award and fan-out: "
        "percentiles over all samples",
        "goals": goals(backends),
        "backends": backends,
        "skipped": skipped,
    }
    h.write_results(args.output, results)
    print_summary(results)
    return 0


def print_summary(results: dict[str, Any]) -> None:
    print(f"\nrun took {results['run_seconds']:.0f} s")
    for name, data in results["backends"].items():
        parts = []
        if "lifecycle" in data:
            life = data["lifecycle"]
            parts.append(
                f"{life['lifecycles_per_s']} lifecycles/s (p50 {life['lifecycle_p50_ms']} ms, "
                f"errors {life['errors']}, ledger ok {life['ledger_check']['ok']})"
            )
        if "award_latency" in data:
            award = data["award_latency"]["close_to_winner_socket"]
            parts.append(f"award p50 {award['p50_ms']} p99 {award['p99_ms']} ms")
        if "fanout" in data:
            fan = data["fanout"]
            parts.append(
                f"fan-out p50 {fan['from_send']['p50_ms']} p99 {fan['from_send']['p99_ms']} ms "
                f"({fan['received']}/{fan['expected']})"
            )
        print(f"{name:8s} " + "; ".join(parts))
        for goal, verdict in results["goals"][name].items():
            state = "met" if verdict["met"] else "MISSED"
            print(f"    {goal}: {verdict['value']} (goal {verdict['goal']}): {state}")
    for name, why in results["skipped"].items():
        print(f"{name:8s} skipped: {why}")


if __name__ == "__main__":
    sys.exit(main())
