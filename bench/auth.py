"""Authenticated request throughput: ``GET /api/v1/agents/me`` with an agent API key.

Starts the real hub (``hermes serve``, one worker) on SQLite and on PostgreSQL, plus a bare
FastAPI app (no auth, no database) under the same uvicorn settings, and loads all of them in
the same run, interleaved round by round so machine noise falls on each alike.

The headline figure is the ratio authenticated/bare throughput; the goal is >= 0.5 with a
p95 latency under 10 ms at 50 concurrent clients.

    .venv/bin/python bench/auth.py [--duration 10] [--rounds 3] [--backends sqlite,postgres]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

import _harness as h
from hermes_hub.config import Settings

GOAL_RATIO = 0.5
GOAL_P95_MS = 10.0
LATENCY_KEYS = ("requests_per_s", "p50_ms", "p95_ms", "p99_ms")
HUB_HEALTHZ = "hub_healthz"
CLIENT_BOUND_CPU = 0.9


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument(
        "--duration", type=float, default=10.0, help="seconds per measured run [10]"
    )
    parser.add_argument(
        "--warmup", type=float, default=3.0, help="seconds of unrecorded load first [3]"
    )
    parser.add_argument("--rounds", type=int, default=3, help="measured runs per target [3]")
    parser.add_argument("--concurrency", type=int, default=50, help="open connections [50]")
    parser.add_argument("--threads", type=int, default=2, help="wrk threads [2]")
    parser.add_argument(
        "--backends", type=h.backends_arg, default=["sqlite", "postgres"], help="[sqlite,postgres]"
    )
    parser.add_argument(
        "--tool",
        choices=("auto", "wrk", "python", "httpx"),
        default="auto",
        help="load generator: wrk if installed (auto), else a raw asyncio client (python);\n"
        "httpx is offered for comparison only: it is slower than the servers",
    )
    parser.add_argument(
        "--redis-url",
        default=None,
        help="give the hub HERMES_REDIS_URL, so rate-limit counters live in Redis [off]",
    )
    parser.add_argument(
        "--output", type=Path, default=h.RESULTS_DIR / "auth.json", help="[bench/results/auth.json]"
    )
    return parser.parse_args(argv)


def choose_tool(requested: str) -> str:
    if requested == "python":
        return "python-asyncio"
    if requested == "httpx":
        return "python-httpx"
    if h.wrk_path():
        return "wrk"
    if requested == "wrk":
        raise SystemExit("wrk is not installed (apt-get install -y wrk)")
    print(
        "note: wrk not found; falling back to the Python asyncio client, which may be the "
        "bottleneck (see client_cpu_fraction in the results). apt-get install -y wrk"
    )
    return "python-asyncio"


def load(
    tool: str,
    url: str,
    headers: dict[str, str],
    args: argparse.Namespace,
    seconds: float,
    workdir: Path,
) -> h.LoadResult:
    if tool == "wrk":
        return h.run_wrk(
            url,
            headers=headers,
            concurrency=args.concurrency,
            threads=args.threads,
            duration_s=seconds,
            workdir=workdir,
        )
    return h.run_pyload(
        url, headers=headers, concurrency=args.concurrency, duration_s=seconds, client=tool
    )


def prepare_hub(
    procs: h.Processes,
    stack: contextlib.ExitStack,
    backend: str,
    args: argparse.Namespace,
    workdir: Path,
) -> tuple[h.Server, dict[str, Any]] | None:
    info: dict[str, Any] = {}
    if backend == "sqlite":
        url = f"sqlite+aiosqlite:///{workdir / 'sqlite' / 'hermes.db'}"
        info["database"] = "SQLite file (WAL) in a temporary directory on local disk"
    else:
        pg = stack.enter_context(
            h.scratch_postgres(os.environ.get("HERMES_BENCH_DATABASE_URL", h.DEFAULT_PG_URL))
        )
        if pg is None:
            return None
        url, version = pg
        info["database"] = f"PostgreSQL {version}, scratch database on 127.0.0.1"
    hub = h.start_hub(
        procs, name=backend, workdir=workdir, database_url=url, redis_url=args.redis_url
    )
    return hub, info


@dataclass(frozen=True)
class Target:
    url: str
    headers: dict[str, str]
    pid: int


def measure(tool: str, target: Target, args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    cpu_before = h.process_cpu_seconds(target.pid)
    result = load(tool, target.url, target.headers, args, args.duration, workdir)
    cpu_after = h.process_cpu_seconds(target.pid)
    entry = result.as_dict()
    if cpu_before is not None and cpu_after is not None and result.ok:
        # Server CPU per answered request: far less sensitive to a noisy machine than req/s.
        used = cpu_after - cpu_before
        entry["server_cpu_ms_per_request"] = round(1000 * used / max(result.ok, 1), 3)
        entry["server_cpu_fraction"] = round(used / result.duration_s, 3)
    return entry


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    tool = choose_tool(args.tool)
    machine = h.machine_info()
    started_at = h.now_iso()
    skipped: dict[str, str] = {}
    backend_info: dict[str, dict[str, Any]] = {}
    rounds: dict[str, list[dict[str, Any]]] = {}

    with h.workspace() as workdir, contextlib.ExitStack() as stack, h.Processes() as procs:
        targets: dict[str, Target] = {}
        hubs: dict[str, h.Server] = {}
        bare = h.start_bare(procs, workdir)
        targets["bare"] = Target(f"{bare.base_url}/bare", {}, bare.process.pid)
        for backend in args.backends:
            prepared = prepare_hub(procs, stack, backend, args, workdir)
            if prepared is None:
                skipped[backend] = "PostgreSQL unreachable"
                continue
            hub, info = prepared
            with httpx.Client(base_url=hub.base_url, timeout=30) as client:
                owner = h.register_owner(client)
                api_key = h.enroll_agent(client, owner)
                headers = {"Authorization": f"Bearer {api_key}"}
                # A load run against a 401 would measure the error path at full speed.
                check = client.get("/api/v1/agents/me", headers=headers)
                if check.status_code != 200:
                    raise RuntimeError(
                        f"{backend}: /agents/me answered {check.status_code}: {check.text}"
                    )
            hubs[backend] = hub
            targets[backend] = Target(f"{hub.base_url}/api/v1/agents/me", headers, hub.process.pid)
            backend_info[backend] = info
            if HUB_HEALTHZ not in targets:
                # The hub's own stack (middleware, metrics) without auth or a query: splits
                # the gap to the bare app into "framework as configured" and "auth + DB".
                targets[HUB_HEALTHZ] = Target(f"{hub.base_url}/healthz", {}, hub.process.pid)

        print(f"load tool: {tool}; targets: {', '.join(targets)}; warm-up {args.warmup:g}s each")
        for target in targets.values():
            load(tool, target.url, target.headers, args, args.warmup, workdir)

        names = list(targets)
        rounds = {name: [] for name in names}
        for index in range(args.rounds):
            # Rotate the order so no target always runs first (or right after another's load).
            order = names[index % len(names) :] + names[: index % len(names)]
            for name in order:
                entry = measure(tool, targets[name], args, workdir)
                entry |= {"round": index + 1, "loadavg_after": h.loadavg()}
                rounds[name].append(entry)
                cpu = entry.get("server_cpu_ms_per_request")
                print(
                    f"round {index + 1}/{args.rounds} {name:11s} {h.describe(entry)}"
                    + (f"  server cpu {cpu:.3f} ms/req" if cpu is not None else "")
                )
                if entry["stalled"]:
                    print(f"warning: {name} round {index + 1}: no request answered at all")
                elif entry["errors"]:
                    print(f"warning: {name} round {index + 1}: {entry['error_detail']}")

        # Requests still stuck when a run ends fail later, unseen by the client: wait out
        # the pool timeout (30 s) only if something stalled, then read the servers' logs.
        if any(r["stalled"] for runs in rounds.values() for r in runs):
            print("a run stalled: waiting 35 s for the hubs to log what the stuck requests hit")
            time.sleep(35)
        for backend, hub in hubs.items():
            backend_info[backend]["server_log_warnings"] = hub.log_events()

    results = build_results(args, tool, machine, started_at, rounds, backend_info, skipped)
    h.write_results(args.output, results)
    print_summary(results)
    return 0


def paired_ratios(measured: list[dict[str, Any]], bare_rounds: list[dict[str, Any]]) -> list[float]:
    # Each round pairs runs made within a minute of each other, so slow drift in the
    # machine's load cancels; the median of these is the headline figure.
    return [
        a["requests_per_s"] / b["requests_per_s"] if b["requests_per_s"] else 0.0
        for a, b in zip(measured, bare_rounds, strict=True)
    ]


def client_bound(bare_rounds: list[dict[str, Any]]) -> bool | None:
    """Whether a Python client ran flat out on the bare app (then the ratio is meaningless)."""
    fractions = [r.get("client_cpu_fraction") for r in bare_rounds]
    if not fractions or any(f is None for f in fractions):
        return None  # wrk: not measured; it needs a fraction of a core here
    return statistics.median(fractions) > CLIENT_BOUND_CPU


def build_results(
    args: argparse.Namespace,
    tool: str,
    machine: dict[str, Any],
    started_at: str,
    rounds: dict[str, list[dict[str, Any]]],
    backend_info: dict[str, dict[str, Any]],
    skipped: dict[str, str],
) -> dict[str, Any]:
    defaults = Settings.model_fields
    bare_rounds = rounds["bare"]
    bare = h.summarize(bare_rounds, LATENCY_KEYS)
    diagnostics: dict[str, Any] = {}
    if HUB_HEALTHZ in rounds:
        healthz = h.summarize(rounds[HUB_HEALTHZ], LATENCY_KEYS)
        diagnostics[HUB_HEALTHZ] = healthz | {
            "what": "GET /healthz on the first hub: its middleware stack, no auth, no query",
            "ratio": round(statistics.median(paired_ratios(rounds[HUB_HEALTHZ], bare_rounds)), 3),
            "rounds": rounds[HUB_HEALTHZ],
        }
    backends: dict[str, Any] = {}
    for name, info in backend_info.items():
        measured = rounds[name]
        summary = h.summarize(measured, LATENCY_KEYS)
        per_round = paired_ratios(measured, bare_rounds)
        ratio = statistics.median(per_round)
        summary |= {
            "ratio": round(ratio, 3),
            "ratio_per_round": [round(r, 3) for r in per_round],
            "ratio_of_medians": round(summary["requests_per_s"] / bare["requests_per_s"], 3)
            if bare["requests_per_s"]
            else None,
            "goal_met": {
                "ratio": ratio >= GOAL_RATIO,
                "p95": summary["p95_ms"] is not None and summary["p95_ms"] < GOAL_P95_MS,
                "no_errors_or_stalls": not summary["errors"] and not summary["stalled_rounds"],
            },
            **info,
            "rounds": measured,
        }
        backends[name] = summary
    return {
        "benchmark": "auth",
        "endpoint": "GET /api/v1/agents/me (Authorization: Bearer <agent API key>)",
        "baseline_endpoint": "GET /bare on a bare FastAPI app, no auth, no database",
        "timestamp": started_at,
        "finished": h.now_iso(),
        "machine": machine | {"loadavg_at_end": h.loadavg()},
        "parameters": {
            "load_tool": tool,
            "concurrency": args.concurrency,
            "client_threads": args.threads if tool == "wrk" else 1,
            "duration_s": args.duration,
            "warmup_s": args.warmup,
            "rounds": args.rounds,
            "server_workers": 1,
            "server": "hermes serve (uvicorn, default loop and HTTP parser, access log off)",
            "db_pool_size": defaults["db_pool_size"].default,
            "db_max_overflow": defaults["db_max_overflow"].default,
            "rate_limit_default": h.GENEROUS_LIMIT,
            "rate_limit_storage": "redis" if args.redis_url else "memory",
            "log_level": "warning",
            "request_timeout_s": h.REQUEST_TIMEOUT_S,
        },
        "goal": {"ratio_min": GOAL_RATIO, "p95_max_ms": GOAL_P95_MS},
        "summary_is": (
            "median over rounds per figure; errors summed; requests_per_s counts 2xx only"
        ),
        "client_bound": client_bound(bare_rounds),
        "bare": bare | {"rounds": bare_rounds},
        "diagnostics": diagnostics,
        "backends": backends,
        "skipped": skipped,
    }


def print_summary(results: dict[str, Any]) -> None:
    params = results["parameters"]
    print(f"\nmedians of {params['rounds']} rounds ({params['load_tool']}):")
    print(f"  {'bare':11s} {h.describe(results['bare'])}")
    for name, d in results["diagnostics"].items():
        print(f"  {name:11s} {h.describe(d)}  ratio {d['ratio']:.3f}")
    for name, s in results["backends"].items():
        verdict = "met" if all(s["goal_met"].values()) else "MISSED"
        print(
            f"  {name:11s} {h.describe(s)}  ratio {s['ratio']:.3f}  "
            f"goal (ratio>={GOAL_RATIO}, p95<{GOAL_P95_MS:g}ms, no errors) {verdict}"
        )
        if s["stalled_rounds"]:
            print(
                f"  {'':11s} {s['stalled_rounds']} stalled round(s); mean rate over all rounds "
                f"{s['requests_per_s_mean']:.1f} req/s; server warnings: {s['server_log_warnings']}"
            )
    for name, why in results["skipped"].items():
        print(f"  {name:11s} skipped: {why}")
    if results["client_bound"]:
        print("warning: the load client used a whole core on the bare app: ratios are client-bound")


if __name__ == "__main__":
    sys.exit(main())
