"""Shared machinery for the benchmarks: real servers as subprocesses, load tools, results.

Run directly, this module is also the helper process the benchmarks start:

    python bench/_harness.py serve-bare --port N      # the no-auth, no-DB baseline app
    python bench/_harness.py pyload --url U ...       # the Python fallback load generator
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fastapi import FastAPI

from hermes_hub.sdk.keys import public_key_b64, sign_b64

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent
RESULTS_DIR = BENCH_DIR / "results"
DEFAULT_PG_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
HOST = "127.0.0.1"
# The limiter stays on (its cost is part of every request) but must never answer 429.
GENEROUS_LIMIT = "10000000/minute"
# A slower answer counts as an error. wrk does not count requests still unanswered when a
# run ends, so a run with no answer at all is flagged "stalled" separately.
REQUEST_TIMEOUT_S = 5.0
STARTUP_TIMEOUT_S = 60.0


# ---------------------------------------------------------------- the bare baseline app

bare_app = FastAPI()


@bare_app.get("/bare")
async def bare() -> dict[str, str]:
    return {"status": "ok"}


def serve_bare(port: int) -> None:
    import uvicorn

    # Mirrors `hermes serve`: one worker, uvicorn's default (auto) loop and HTTP parser,
    # no access log, no server header; only the app differs.
    uvicorn.run(
        bare_app,
        host=HOST,
        port=port,
        workers=1,
        log_level="warning",
        access_log=False,
        server_header=False,
    )


# ---------------------------------------------------------------- processes


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def executable(name: str) -> str:
    """A console script of the venv running this benchmark, so the editable install is used."""
    beside = Path(sys.executable).parent / name
    if beside.exists():
        return str(beside)
    found = shutil.which(name)
    if found is None:
        raise SystemExit(f"cannot find the '{name}' command; run from the project's virtualenv")
    return found


def clean_env(extra: dict[str, str]) -> dict[str, str]:
    # A developer's own HERMES_* settings (Redis, pool sizes...) must not leak into the run.
    env = {k: v for k, v in os.environ.items() if not k.startswith("HERMES_") and k != "PORT"}
    env.update(extra)
    return env


@dataclass
class Server:
    name: str
    base_url: str
    process: subprocess.Popen[bytes]
    log_path: Path

    def log_events(self) -> dict[str, int]:
        """Count the server's warning/error log events (JSON lines), by event and error."""
        counts: dict[str, int] = {}
        try:
            lines = self.log_path.read_text(errors="replace").splitlines()
        except OSError:
            return counts
        for line in lines:
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if isinstance(record, dict) and record.get("level") in {"warning", "error", "critical"}:
                key = f"{record.get('level')}: {record.get('event')}"
                if record.get("error"):
                    key += f" ({str(record['error'])[:120]})"
                counts[key] = counts.get(key, 0) + 1
        return counts

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"


class Processes:
    """Every subprocess a benchmark starts, stopped (by pid) on exit whatever happened."""

    def __init__(self) -> None:
        self._procs: list[subprocess.Popen[bytes]] = []

    def __enter__(self) -> Processes:
        # SIGTERM (e.g. from a CI timeout) becomes an exception so the cleanup below runs.
        signal.signal(signal.SIGTERM, _raise_exit)
        return self

    def __exit__(self, *_: object) -> None:
        self.stop_all()

    def start(
        self, args: Sequence[str], *, env: dict[str, str], log_path: Path
    ) -> subprocess.Popen[bytes]:
        with log_path.open("ab") as log:
            proc = subprocess.Popen(  # noqa: S603 - our own venv's commands, no shell
                list(args),
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=REPO_ROOT,
                start_new_session=True,
            )
        self._procs.append(proc)
        return proc

    def stop(self, proc: subprocess.Popen[bytes]) -> None:
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)
        if proc in self._procs:
            self._procs.remove(proc)

    def stop_all(self) -> None:
        for proc in reversed(list(self._procs)):
            self.stop(proc)


def _raise_exit(signum: int, _frame: object) -> None:
    raise SystemExit(128 + signum)


def wait_healthy(server: Server, path: str = "/healthz") -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(
                f"{server.name} exited with {server.process.returncode}:\n{server.log_tail()}"
            )
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(server.base_url + path, timeout=2).status_code == 200:
                return
        time.sleep(0.1)
    raise RuntimeError(
        f"{server.name} not healthy after {STARTUP_TIMEOUT_S}s:\n{server.log_tail()}"
    )


def start_bare(procs: Processes, workdir: Path) -> Server:
    port = free_port()
    log_path = workdir / "bare.log"
    proc = procs.start(
        [sys.executable, str(Path(__file__).resolve()), "serve-bare", "--port", str(port)],
        env=clean_env({}),
        log_path=log_path,
    )
    server = Server("bare", f"http://{HOST}:{port}", proc, log_path)
    wait_healthy(server, "/bare")
    return server


def hub_env(data_dir: Path, database_url: str, redis_url: str | None) -> dict[str, str]:
    env = {
        "HERMES_DATA_DIR": str(data_dir),
        "HERMES_DATABASE_URL": database_url,
        "HERMES_SECRET_KEY": secrets.token_urlsafe(36),  # 48 characters
        "HERMES_LOG_LEVEL": "warning",
        "HERMES_RATE_LIMIT_DEFAULT": GENEROUS_LIMIT,
        "HERMES_RATE_LIMIT_ANONYMOUS": GENEROUS_LIMIT,
        "HERMES_RATE_LIMIT_ENROLL": GENEROUS_LIMIT,
        "HERMES_RATE_LIMIT_REGISTER": GENEROUS_LIMIT,
        "HERMES_RATE_LIMIT_LOGIN": GENEROUS_LIMIT,
    }
    if redis_url:
        env["HERMES_REDIS_URL"] = redis_url
        # Our own counters, so a shared Redis neither sees nor disturbs anyone else's.
        env["HERMES_RATE_LIMIT_KEY_PREFIX"] = f"hermes_bench_{secrets.token_hex(4)}"
    return env


def start_hub(
    procs: Processes,
    *,
    name: str,
    workdir: Path,
    database_url: str,
    redis_url: str | None,
    extra_env: dict[str, str] | None = None,
) -> Server:
    data_dir = workdir / name
    data_dir.mkdir(parents=True, exist_ok=True)
    env = clean_env(hub_env(data_dir, database_url, redis_url) | (extra_env or {}))
    log_path = workdir / f"{name}.log"
    hermes = executable("hermes")
    with log_path.open("ab") as log:
        upgraded = subprocess.run(  # noqa: S603 - our own venv's command, no shell
            [hermes, "db", "upgrade"],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=REPO_ROOT,
            timeout=120,
            check=False,
        )
    if upgraded.returncode != 0:
        raise RuntimeError(f"'hermes db upgrade' failed for {name}:\n{log_path.read_text()}")
    port = free_port()
    proc = procs.start([hermes, "serve", "--port", str(port)], env=env, log_path=log_path)
    server = Server(name, f"http://{HOST}:{port}", proc, log_path)
    wait_healthy(server)
    return server


# ---------------------------------------------------------------- PostgreSQL scratch database


def _asyncpg_kwargs(url: str) -> dict[str, Any]:
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    return {
        "host": parsed.host or HOST,
        "port": parsed.port or 5432,
        "user": parsed.username,
        "password": parsed.password,
        "database": parsed.database,
    }


async def _pg_execute(url: str, sql: str) -> str:
    import asyncpg

    conn = await asyncpg.connect(**_asyncpg_kwargs(url), timeout=5)
    try:
        await conn.execute(sql)
        return str(await conn.fetchval("SHOW server_version"))
    finally:
        await conn.close()


@contextlib.contextmanager
def scratch_postgres(admin_url: str) -> Iterator[tuple[str, str] | None]:
    """Yield (database URL, server version) of a fresh ``hermes_bench_*`` database, or None.

    None means PostgreSQL is unreachable; the caller skips that backend with a note.
    """
    from sqlalchemy.engine import make_url

    name = f"hermes_bench_{secrets.token_hex(6)}"
    try:
        version = asyncio.run(_pg_execute(admin_url, f'CREATE DATABASE "{name}"'))
    except Exception as exc:  # unreachable, refused, misconfigured: skip and say why
        print(f"note: PostgreSQL not usable at {_hide_password(admin_url)} ({exc!r}); skipping it")
        version = None
    if version is None:
        yield None
        return
    try:
        url = make_url(admin_url).set(database=name).render_as_string(hide_password=False)
        yield url, version
    finally:
        try:
            asyncio.run(_pg_execute(admin_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        except Exception as exc:  # cleanup must not hide the real result or error
            print(f"warning: could not drop scratch database {name}: {exc!r}")


def _hide_password(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


# ---------------------------------------------------------------- hub fixtures over HTTP


@dataclass
class Owner:
    email: str
    token: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


def register_owner(client: httpx.Client) -> Owner:
    email = f"bench-{uuid.uuid4().hex[:12]}@example.com"
    password = secrets.token_urlsafe(24)
    body = {"email": email, "password": password}
    response = client.post("/api/v1/auth/register", json=body)
    expect(response, 201)
    response = client.post("/api/v1/auth/login", json=body)
    expect(response, 200)
    return Owner(email=email, token=str(response.json()["access_token"]))


def enroll_payload(key: Ed25519PrivateKey, name: str = "bench agent") -> dict[str, Any]:
    return {"name": name, "public_key": public_key_b64(key)}


def respond_payload(key: Ed25519PrivateKey, challenge: str) -> dict[str, str]:
    return {"signature": sign_b64(key, challenge)}


def enroll_agent(client: httpx.Client, owner: Owner) -> str:
    """Enroll one agent through the public API and return its API key."""
    key = Ed25519PrivateKey.generate()
    response = client.post("/api/v1/agents/enroll", json=enroll_payload(key), headers=owner.headers)
    expect(response, 201)
    challenge = response.json()
    response = client.post(
        f"/api/v1/agents/enroll/{challenge['enrollment_id']}/respond",
        json=respond_payload(key, challenge["challenge"]),
    )
    expect(response, 201)
    return str(response.json()["api_key"])


def expect(response: httpx.Response, status: int) -> None:
    if response.status_code != status:
        raise RuntimeError(
            f"{response.request.method} {response.request.url.path} answered "
            f"{response.status_code}, expected {status}: {response.text[:500]}"
        )


# ---------------------------------------------------------------- load generators


@dataclass
class LoadResult:
    tool: str
    duration_s: float
    ok: int
    errors: int
    p50_ms: float
    p95_ms: float
    p99_ms: float
    mean_ms: float
    max_ms: float
    error_detail: dict[str, int] = field(default_factory=dict)
    # Near 1.0 the Python client, not the server, sets the pace (wrk: not measured).
    client_cpu_fraction: float | None = None

    @property
    def rps(self) -> float:
        # Only successful answers count: a server failing fast must not look fast.
        return self.ok / self.duration_s if self.duration_s > 0 else 0.0

    def as_dict(self) -> dict[str, Any]:
        # With no answer there is no latency to report, and 0 would read as "fast".
        def ms(value: float) -> float | None:
            return round(value, 3) if self.ok else None

        return {
            "requests_per_s": round(self.rps, 1),
            "p50_ms": ms(self.p50_ms),
            "p95_ms": ms(self.p95_ms),
            "p99_ms": ms(self.p99_ms),
            "mean_ms": ms(self.mean_ms),
            "max_ms": ms(self.max_ms),
            "ok": self.ok,
            "errors": self.errors,
            "error_detail": self.error_detail,
            "duration_s": round(self.duration_s, 3),
            # Nothing answered at all: requests hung past the run (wrk then reports no error).
            "stalled": self.ok == 0,
            "tool": self.tool,
            "client_cpu_fraction": self.client_cpu_fraction,
        }


# wrk's --latency table stops at 50/75/90/99; a done() hook gives p95 from the same
# histogram. It defines no request()/response(), so wrk keeps its static, Lua-free
# request path and the hook costs nothing while the load runs.
_WRK_DONE_LUA = """
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRK_JSON {"requests":%.0f,"duration_us":%.0f,"connect":%.0f,"read":%.0f,' ..
    '"write":%.0f,"status":%.0f,"timeout":%.0f,"p50":%.1f,"p95":%.1f,"p99":%.1f,' ..
    '"mean":%.1f,"max":%.1f}\\n',
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(95), latency:percentile(99),
    latency.mean, latency.max))
end
"""


def wrk_path() -> str | None:
    return shutil.which("wrk")


def run_wrk(
    url: str,
    *,
    headers: dict[str, str],
    concurrency: int,
    threads: int,
    duration_s: float,
    workdir: Path,
) -> LoadResult:
    script = workdir / "wrk_done.lua"
    if not script.exists():
        script.write_text(_WRK_DONE_LUA)
    args = [
        wrk_path() or "wrk",
        "-c",
        str(concurrency),
        "-t",
        str(threads),
        "-d",
        f"{max(1, round(duration_s))}s",
        "--timeout",
        f"{REQUEST_TIMEOUT_S:g}s",
        "--latency",
        "-s",
        str(script),
    ]
    for name, value in headers.items():
        args += ["-H", f"{name}: {value}"]
    args.append(url)
    completed = subprocess.run(  # noqa: S603 - fixed arguments, no shell
        args, capture_output=True, text=True, timeout=duration_s + 60, check=False
    )
    line = next((ln for ln in completed.stdout.splitlines() if ln.startswith("WRK_JSON ")), None)
    if completed.returncode != 0 or line is None:
        raise RuntimeError(
            f"wrk failed ({completed.returncode}): {completed.stderr or completed.stdout}"
        )
    data = json.loads(line.removeprefix("WRK_JSON "))
    errors = {k: int(data[k]) for k in ("connect", "read", "write", "status", "timeout") if data[k]}
    # wrk counts a non-2xx/3xx answer both as a request and as a "status" error.
    ok = int(data["requests"]) - int(data["status"])
    return LoadResult(
        tool="wrk",
        duration_s=data["duration_us"] / 1e6,
        ok=ok,
        errors=sum(errors.values()),
        p50_ms=data["p50"] / 1000,
        p95_ms=data["p95"] / 1000,
        p99_ms=data["p99"] / 1000,
        mean_ms=data["mean"] / 1000,
        max_ms=data["max"] / 1000,
        error_detail=errors,
    )


PYTHON_CLIENTS = ("python-asyncio", "python-httpx")


def run_pyload(
    url: str,
    *,
    headers: dict[str, str],
    concurrency: int,
    duration_s: float,
    client: str,
    body_file: Path | None = None,
    expect: str | None = None,
) -> LoadResult:
    """A Python load client in its own process, so it does not share this one's interpreter."""
    args = [
        sys.executable,
        str(Path(__file__).resolve()),
        "pyload",
        "--client",
        client,
        "--url",
        url,
        "--concurrency",
        str(concurrency),
        "--duration",
        str(duration_s),
    ]
    for name, value in headers.items():
        args += ["--header", f"{name}: {value}"]
    if body_file is not None:
        args += ["--body-file", str(body_file)]
    if expect is not None:
        args += ["--expect", expect]
    completed = subprocess.run(  # noqa: S603 - our own interpreter and script, no shell
        args, capture_output=True, text=True, timeout=duration_s + 60, check=False
    )
    if completed.returncode != 0:
        raise RuntimeError(f"python load client failed: {completed.stderr[-2000:]}")
    data = json.loads(completed.stdout.strip().splitlines()[-1])
    return LoadResult(**data)


class _Tally:
    def __init__(self) -> None:
        self.latencies: list[float] = []
        self.errors: dict[str, int] = {}

    def error(self, kind: str) -> None:
        self.errors[kind] = self.errors.get(kind, 0) + 1

    def result(self, tool: str, elapsed: float, cpu: float) -> LoadResult:
        ms = [x * 1000 for x in self.latencies]
        return LoadResult(
            tool=tool,
            duration_s=elapsed,
            ok=len(ms),
            errors=sum(self.errors.values()),
            p50_ms=percentile(ms, 50),
            p95_ms=percentile(ms, 95),
            p99_ms=percentile(ms, 99),
            mean_ms=statistics.fmean(ms) if ms else float("nan"),
            max_ms=max(ms, default=float("nan")),
            error_detail=self.errors,
            client_cpu_fraction=round(cpu / elapsed, 3) if elapsed else None,
        )


async def _raw_worker(
    host: str,
    port: int,
    request: bytes,
    deadline: float,
    tally: _Tally,
    expect: bytes | None = None,
) -> None:
    """One keep-alive HTTP/1.1 connection sending a fixed request back to back; with
    ``expect``, a 200 whose body lacks it counts as an error (JSON-RPC errors come as 200).

    Hand-rolled because httpx's pool costs more per request than the hub's bare app
    (measured here: httpx tops out near 140 req/s at 50 connections, wrk near 6000),
    which would make every target look equally fast.
    """
    reader: asyncio.StreamReader | None = None
    writer: asyncio.StreamWriter | None = None
    while time.perf_counter() < deadline:
        t0 = time.perf_counter()
        try:
            async with asyncio.timeout(REQUEST_TIMEOUT_S):
                if writer is None:
                    reader, writer = await asyncio.open_connection(host, port)
                assert reader is not None
                writer.write(request)
                head = await reader.readuntil(b"\r\n\r\n")
                status = int(head[9:12])
                length = 0
                for line in head.split(b"\r\n")[1:]:
                    name, _, value = line.partition(b":")
                    if name.strip().lower() == b"content-length":
                        length = int(value)
                body = await reader.readexactly(length)
        except (OSError, TimeoutError, asyncio.IncompleteReadError, ValueError) as exc:
            tally.error(type(exc).__name__)
            if writer is not None:
                writer.close()
            reader = writer = None
            continue
        if status != 200:
            tally.error(f"status_{status}")
        elif expect is not None and expect not in body:
            tally.error("unexpected_body")
        else:
            tally.latencies.append(time.perf_counter() - t0)
    if writer is not None:
        writer.close()


async def _pyload(
    client: str,
    url: str,
    headers: dict[str, str],
    concurrency: int,
    duration_s: float,
    body: bytes | None = None,
    expect: bytes | None = None,
) -> LoadResult:
    tally = _Tally()
    cpu0 = time.process_time()
    started = time.perf_counter()
    deadline = started + duration_s
    if client == "python-asyncio":
        parsed = httpx.URL(url)
        port = parsed.port or 80
        method = "GET" if body is None else "POST"
        lines = [f"{method} {parsed.raw_path.decode()} HTTP/1.1", f"Host: {parsed.host}:{port}"]
        lines += [f"{name}: {value}" for name, value in headers.items()]
        if body is not None:
            lines.append(f"Content-Length: {len(body)}")
        request = ("\r\n".join(lines) + "\r\n\r\n").encode() + (body or b"")
        await asyncio.gather(
            *(
                _raw_worker(parsed.host, port, request, deadline, tally, expect)
                for _ in range(concurrency)
            )
        )
    else:
        limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
        async with httpx.AsyncClient(
            headers=headers, limits=limits, timeout=REQUEST_TIMEOUT_S
        ) as http:

            async def worker() -> None:
                while time.perf_counter() < deadline:
                    t0 = time.perf_counter()
                    try:
                        response = await http.get(url)
                    except httpx.HTTPError as exc:
                        tally.error(type(exc).__name__)
                        continue
                    if response.status_code == 200:
                        tally.latencies.append(time.perf_counter() - t0)
                    else:
                        tally.error(f"status_{response.status_code}")

            await asyncio.gather(*(worker() for _ in range(concurrency)))
    return tally.result(client, time.perf_counter() - started, time.process_time() - cpu0)


def install_fast_loop() -> None:
    with contextlib.suppress(ImportError):
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())


# ---------------------------------------------------------------- statistics and results


def percentile(values: Sequence[float], pct: float) -> float:
    """Nearest-rank percentile (the value at or below which ``pct`` % of samples fall)."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(1, -(-len(ordered) * pct // 100))  # ceil without floats drifting
    return float(ordered[int(rank) - 1])


def percentile_ms(values: Sequence[float], pct: float) -> float | None:
    """``percentile`` rounded for the results file; None (JSON null) when nothing was timed."""
    return round(percentile(values, pct), 3) if values else None


def dist_ms(seconds: Sequence[float]) -> dict[str, Any]:
    """Percentiles in milliseconds of durations given in seconds."""
    ms = [1000 * s for s in seconds]
    return {
        "n": len(ms),
        "p50_ms": percentile_ms(ms, 50),
        "p95_ms": percentile_ms(ms, 95),
        "p99_ms": percentile_ms(ms, 99),
        "mean_ms": round(statistics.fmean(ms), 3) if ms else None,
        "max_ms": round(max(ms), 3) if ms else None,
    }


def median_of(rounds: Sequence[dict[str, Any]], key: str) -> float | None:
    """Median over rounds; a missing latency (a stalled round) counts as worse than any."""
    median = statistics.median(
        float("inf") if r.get(key) is None else float(r[key]) for r in rounds
    )
    return None if median == float("inf") else round(median, 3)


def summarize(rounds: Sequence[dict[str, Any]], keys: Sequence[str]) -> dict[str, Any]:
    summary: dict[str, Any] = {k: median_of(rounds, k) for k in keys}
    # The median shrugs off one stalled round; the mean of the rate does not.
    summary[f"{keys[0]}_mean"] = round(statistics.fmean(r[keys[0]] for r in rounds), 3)
    for optional in (
        "server_cpu_ms_per_request",
        "server_cpu_ms_per_enrollment",
        "server_cpu_fraction",
    ):
        # A cost per request only exists for rounds that answered some.
        values = [r[optional] for r in rounds if r.get(optional) is not None]
        if values:
            summary[optional] = round(statistics.median(values), 3)
    summary["errors"] = sum(int(r["errors"]) for r in rounds)
    summary["stalled_rounds"] = sum(1 for r in rounds if r.get("stalled"))
    return summary


def process_cpu_seconds(pid: int) -> float | None:
    """User + system CPU time of a process (Linux /proc), or None where unavailable."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return None


def describe(figures: dict[str, Any], rate_key: str = "requests_per_s", unit: str = "req/s") -> str:
    """One console line of a result dict: rate, latency percentiles, errors."""

    def ms(key: str) -> str:
        value = figures.get(key)
        return "    n/a" if value is None else f"{value:7.2f}"

    return (
        f"{figures[rate_key]:9.1f} {unit}  p50 {ms('p50_ms')}  p95 {ms('p95_ms')}  "
        f"p99 {ms('p99_ms')} ms  errors {figures['errors']}"
    )


def machine_info() -> dict[str, Any]:
    info: dict[str, Any] = {
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "machine": platform.machine(),
    }
    with contextlib.suppress(OSError):
        info["cpu_model"] = next(
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        )
    with contextlib.suppress(OSError):
        info["loadavg_at_start"] = [float(x) for x in os.getloadavg()]
    info["packages"] = _versions(
        ("fastapi", "uvicorn", "sqlalchemy", "asyncpg", "aiosqlite", "uvloop")
    )
    info["git_commit"] = _git_commit()
    return info


def _versions(names: Sequence[str]) -> dict[str, str | None]:
    from importlib.metadata import PackageNotFoundError, version

    found: dict[str, str | None] = {}
    for name in names:
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            found[name] = None
    return found


def _git_commit() -> str | None:
    git = shutil.which("git")
    if git is None:
        return None
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        out = subprocess.run(  # noqa: S603 - read-only query, no shell
            [git, "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            cwd=REPO_ROOT,
            timeout=5,
            check=False,
        )
        if out.returncode == 0:
            return out.stdout.strip()
    return None


def loadavg() -> list[float] | None:
    try:
        return [float(x) for x in os.getloadavg()]
    except OSError:
        return None


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def write_results(path: Path, data: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, sort_keys=False) + "\n")
    print(f"results written to {path}")


def int_list(value: str) -> list[int]:
    """An argparse type: comma-separated integers."""
    try:
        return [int(v) for v in value.split(",") if v.strip()]
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"comma-separated integers, not {value!r}") from exc


def backends_arg(value: str) -> list[str]:
    chosen = [b.strip() for b in value.split(",") if b.strip()]
    unknown = set(chosen) - {"sqlite", "postgres"}
    if unknown or not chosen:
        raise argparse.ArgumentTypeError(f"backends are sqlite and/or postgres, not {value!r}")
    return chosen


@contextlib.contextmanager
def workspace() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="hermes_bench_") as tmp:
        yield Path(tmp)


# ---------------------------------------------------------------- helper-process entry point


def _main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    bare_cmd = sub.add_parser("serve-bare")
    bare_cmd.add_argument("--port", type=int, required=True)
    load_cmd = sub.add_parser("pyload")
    load_cmd.add_argument("--client", choices=PYTHON_CLIENTS, default="python-asyncio")
    load_cmd.add_argument("--url", required=True)
    load_cmd.add_argument("--concurrency", type=int, default=50)
    load_cmd.add_argument("--duration", type=float, default=10.0)
    load_cmd.add_argument("--header", action="append", default=[])
    load_cmd.add_argument("--body-file", type=Path, help="POST this file's bytes (asyncio client)")
    load_cmd.add_argument("--expect", help="a 200 must contain this text to count")
    args = parser.parse_args(argv)
    if args.command == "serve-bare":
        serve_bare(args.port)
        return
    headers = dict(h.split(": ", 1) for h in args.header)
    install_fast_loop()
    body = args.body_file.read_bytes() if args.body_file else None
    expect = args.expect.encode() if args.expect else None
    result = asyncio.run(
        _pyload(args.client, args.url, headers, args.concurrency, args.duration, body, expect)
    )
    print(json.dumps(result.__dict__))


if __name__ == "__main__":
    _main()
