"""Enrollment throughput: one complete Ed25519 challenge-response per enrollment.

Each enrollment is ``POST /api/v1/agents/enroll`` (as the owning user) followed by
``POST /api/v1/agents/enroll/{id}/respond`` with the signed challenge, against the real hub
(``hermes serve``, one worker) on SQLite and on PostgreSQL. The client is this process
(asyncio + httpx); it has to sign each challenge, so wrk cannot do it.

    .venv/bin/python bench/enroll.py [--workers 20] [--per-worker 25] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import httpx
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

import _harness as h
from hermes_hub.config import Settings

SUMMARY_KEYS = ("enrollments_per_s", "requests_per_s", "p50_ms", "p95_ms", "p99_ms")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--workers", type=int, default=20, help="concurrent enrolling clients [20]")
    parser.add_argument(
        "--per-worker", type=int, default=25, help="enrollments per worker per round [25]"
    )
    parser.add_argument("--rounds", type=int, default=3, help="measured rounds per backend [3]")
    parser.add_argument("--warmup", type=int, default=40, help="unrecorded enrollments first [40]")
    parser.add_argument(
        "--max-round-seconds", type=float, default=30.0, help="stop a round early after this [30]"
    )
    parser.add_argument(
        "--backends", type=h.backends_arg, default=["sqlite", "postgres"], help="[sqlite,postgres]"
    )
    parser.add_argument("--redis-url", default=None, help="give the hub HERMES_REDIS_URL [off]")
    parser.add_argument(
        "--output",
        type=Path,
        default=h.RESULTS_DIR / "enroll.json",
        help="[bench/results/enroll.json]",
    )
    return parser.parse_args(argv)


class Tally:
    def __init__(self) -> None:
        self.total_ms: list[float] = []
        self.start_ms: list[float] = []
        self.respond_ms: list[float] = []
        self.errors: dict[str, int] = {}

    def error(self, kind: str) -> None:
        self.errors[kind] = self.errors.get(kind, 0) + 1


async def enroll_once(client: httpx.AsyncClient, owner: h.Owner, tally: Tally) -> None:
    # Key generation is the agent's own work, not the hub's, so it stays outside the timing.
    key = Ed25519PrivateKey.generate()
    payload = h.enroll_payload(key)
    t0 = time.perf_counter()
    try:
        response = await client.post("/api/v1/agents/enroll", json=payload, headers=owner.headers)
    except httpx.HTTPError as exc:
        tally.error(f"enroll:{type(exc).__name__}")
        return
    t1 = time.perf_counter()
    if response.status_code != 201:
        tally.error(f"enroll:{response.status_code}")
        return
    challenge = response.json()
    try:
        response = await client.post(
            f"/api/v1/agents/enroll/{challenge['enrollment_id']}/respond",
            json=h.respond_payload(key, challenge["challenge"]),
        )
    except httpx.HTTPError as exc:
        tally.error(f"respond:{type(exc).__name__}")
        return
    t2 = time.perf_counter()
    if response.status_code != 201:
        tally.error(f"respond:{response.status_code}")
        return
    tally.start_ms.append((t1 - t0) * 1000)
    tally.respond_ms.append((t2 - t1) * 1000)
    tally.total_ms.append((t2 - t0) * 1000)


async def run_round(
    base_url: str, owner: h.Owner, *, workers: int, per_worker: int, max_seconds: float
) -> dict[str, Any]:
    tally = Tally()
    limits = httpx.Limits(max_connections=workers, max_keepalive_connections=workers)
    async with httpx.AsyncClient(base_url=base_url, limits=limits, timeout=30) as client:
        cpu0 = time.process_time()
        started = time.perf_counter()
        deadline = started + max_seconds

        async def worker() -> None:
            for _ in range(per_worker):
                if time.perf_counter() >= deadline:
                    return
                await enroll_once(client, owner, tally)

        await asyncio.gather(*(worker() for _ in range(workers)))
        elapsed = time.perf_counter() - started
        client_cpu = time.process_time() - cpu0
    ok = len(tally.total_ms)
    return {
        "enrollments_per_s": round(ok / elapsed, 2),
        "requests_per_s": round(2 * ok / elapsed, 2),
        "p50_ms": h.percentile_ms(tally.total_ms, 50),
        "p95_ms": h.percentile_ms(tally.total_ms, 95),
        "p99_ms": h.percentile_ms(tally.total_ms, 99),
        "enroll_step_p50_p95_p99_ms": [h.percentile_ms(tally.start_ms, p) for p in (50, 95, 99)],
        "respond_step_p50_p95_p99_ms": [h.percentile_ms(tally.respond_ms, p) for p in (50, 95, 99)],
        "enrollments": ok,
        "errors": sum(tally.errors.values()),
        "error_detail": tally.errors,
        "duration_s": round(elapsed, 3),
        # A client near 100 % of one core would be the bottleneck, not the hub.
        "client_cpu_fraction": round(client_cpu / elapsed, 3) if elapsed else None,
        "stopped_early": elapsed >= max_seconds and ok < workers * per_worker,
    }


def bench_backend(base_url: str, server_pid: int, args: argparse.Namespace) -> list[dict[str, Any]]:
    async def go() -> list[dict[str, Any]]:
        async with httpx.AsyncClient(base_url=base_url, timeout=30) as client:
            owner = await asyncio.to_thread(_register, base_url)
            warm = Tally()
            await asyncio.gather(*(enroll_once(client, owner, warm) for _ in range(args.warmup)))
            if warm.errors:
                print(f"warning: warm-up errors: {warm.errors}")
        rounds = []
        for index in range(args.rounds):
            cpu_before = h.process_cpu_seconds(server_pid)
            result = await run_round(
                base_url,
                owner,
                workers=args.workers,
                per_worker=args.per_worker,
                max_seconds=args.max_round_seconds,
            )
            cpu_after = h.process_cpu_seconds(server_pid)
            if cpu_before is not None and cpu_after is not None:
                used = cpu_after - cpu_before
                result["server_cpu_ms_per_enrollment"] = round(
                    1000 * used / max(result["enrollments"], 1), 3
                )
                result["server_cpu_fraction"] = round(used / result["duration_s"], 3)
            rounds.append(result | {"round": index + 1, "loadavg_after": h.loadavg()})
            line = h.describe(result, "enrollments_per_s", "enrollments/s")
            cpu = result["client_cpu_fraction"]
            server = result.get("server_cpu_ms_per_enrollment")
            print(
                f"  round {index + 1}/{args.rounds}: {line}  client cpu {cpu:.0%}"
                + (f"  server cpu {server:.2f} ms/enrollment" if server is not None else "")
            )
        return rounds

    h.install_fast_loop()
    return asyncio.run(go())


def _register(base_url: str) -> h.Owner:
    with httpx.Client(base_url=base_url, timeout=30) as client:
        return h.register_owner(client)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    machine = h.machine_info()
    started_at = h.now_iso()
    backends: dict[str, Any] = {}
    skipped: dict[str, str] = {}
    with h.workspace() as workdir:
        for backend in args.backends:
            # One backend at a time: enrollment writes, and two hubs writing at once would
            # compete for the same two cores and the same disk.
            with contextlib.ExitStack() as stack, h.Processes() as procs:
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
                    info = {"database": f"PostgreSQL {version}, scratch database on 127.0.0.1"}
                hub = h.start_hub(
                    procs, name=backend, workdir=workdir, database_url=url, redis_url=args.redis_url
                )
                size = f"{args.workers}x{args.per_worker}"
                print(f"{backend}: {args.rounds} rounds of {size} enrollments")
                try:
                    rounds = bench_backend(hub.base_url, hub.process.pid, args)
                except Exception:
                    print(f"{backend} hub log:\n{hub.log_tail()}")
                    raise
                summary = h.summarize(rounds, SUMMARY_KEYS)
                info["server_log_warnings"] = hub.log_events()
                backends[backend] = summary | info | {"rounds": rounds}

    defaults = Settings.model_fields
    results = {
        "benchmark": "enroll",
        "operation": "POST /api/v1/agents/enroll + POST /api/v1/agents/enroll/{id}/respond",
        "timestamp": started_at,
        "finished": h.now_iso(),
        "machine": machine | {"loadavg_at_end": h.loadavg()},
        "parameters": {
            "load_tool": "python-httpx (asyncio, in the benchmark process)",
            "concurrency": args.workers,
            "enrollments_per_worker": args.per_worker,
            "requests_per_round": args.workers * args.per_worker * 2,
            "warmup_enrollments": args.warmup,
            "rounds": args.rounds,
            "max_round_seconds": args.max_round_seconds,
            "server_workers": 1,
            "db_pool_size": defaults["db_pool_size"].default,
            "db_max_overflow": defaults["db_max_overflow"].default,
            "rate_limit_storage": "redis" if args.redis_url else "memory",
            "log_level": "warning",
        },
        "summary_is": "median over rounds per figure; errors summed; latency is the whole "
        "enrollment (both requests); requests_per_s = 2 x enrollments_per_s",
        "backends": backends,
        "skipped": skipped,
    }
    h.write_results(args.output, results)
    print(f"\nmedians of {args.rounds} rounds:")
    for name, s in backends.items():
        print(f"  {name:8s} {h.describe(s, 'enrollments_per_s', 'enrollments/s')}")
    for name, why in skipped.items():
        print(f"  {name:8s} skipped: {why}")
    median_cpu = [r["client_cpu_fraction"] for s in backends.values() for r in s["rounds"]]
    if median_cpu and statistics.median(median_cpu) > 0.8:
        print("warning: the client used most of a core; figures may be client-bound")
    return 0


if __name__ == "__main__":
    sys.exit(main())
