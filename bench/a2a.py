"""A2A gateway overhead: the same stock a2a-sdk agent called directly and through the hub.

Starts a stock a2a-sdk agent (a2a-sdk's DefaultRequestHandler with an executor that answers
every message with one text message, like the SDK's hello-world sample) in its own process,
and the real hub (``hermes serve``, one worker, SQLite) in another, with the agent enrolled
at its endpoint. A caller agent's API key authenticates the hub-proxied calls. Both targets
get the same JSON-RPC ``SendMessage`` body from a raw asyncio load client in a third process,
interleaved round by round so machine noise falls on each alike.

Reported: latency at one caller (the added latency itself, p50/p95) and at 20 concurrent
callers (p50/p95 and the throughput ratio proxied/direct). Goals: added p50 < 3 ms,
throughput >= 0.7 of direct.

    .venv/bin/python bench/a2a.py [--duration 10] [--rounds 3] [--concurrency 20]
"""

from __future__ import annotations

import sys

# This file is named like the a2a-sdk package it benchmarks; search this folder last so
# ``import a2a`` finds the SDK (``_harness`` is still found here).
sys.path.append(sys.path.pop(0))

import argparse
import json
import statistics
import uuid
from pathlib import Path
from typing import Any

import httpx
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

import _harness as h

GOAL_ADDED_P50_MS = 3.0
GOAL_THROUGHPUT_RATIO = 0.7
EXPECT = '"result"'


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    sub = parser.add_subparsers(dest="command")
    serve = sub.add_parser("serve-agent", help="run the stock agent (used by the benchmark)")
    serve.add_argument("--port", type=int, required=True)
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per run [10]")
    parser.add_argument("--warmup", type=float, default=3.0, help="unrecorded seconds first [3]")
    parser.add_argument("--rounds", type=int, default=3, help="measured runs per target [3]")
    parser.add_argument("--concurrency", type=int, default=20, help="concurrent callers [20]")
    parser.add_argument(
        "--output", type=Path, default=h.RESULTS_DIR / "a2a.json", help="[bench/results/a2a.json]"
    )
    return parser.parse_args(argv)


def serve_agent(port: int) -> None:
    """The stock agent: nothing here comes from the hub."""
    import uvicorn
    from a2a.helpers.proto_helpers import new_text_message
    from a2a.server.agent_execution import AgentExecutor, RequestContext
    from a2a.server.events import EventQueue
    from a2a.server.request_handlers import DefaultRequestHandler
    from a2a.server.routes import create_agent_card_routes, create_jsonrpc_routes
    from a2a.server.tasks import InMemoryTaskStore
    from a2a.types.a2a_pb2 import AgentCapabilities, AgentCard, AgentInterface, AgentSkill
    from starlette.applications import Starlette

    class HelloExecutor(AgentExecutor):
        async def execute(self, context: RequestContext, event_queue: EventQueue) -> None:
            await event_queue.enqueue_event(new_text_message(f"hello, {context.get_user_input()}"))

        async def cancel(self, context: RequestContext, event_queue: EventQueue) -> None:
            raise NotImplementedError("nothing to cancel: every answer is immediate")

    url = f"http://{h.HOST}:{port}"
    card = AgentCard(
        name="Bench Hello",
        description="Answers every message at once.",
        version="1",
        supported_interfaces=[
            AgentInterface(url=f"{url}/rpc", protocol_binding="JSONRPC", protocol_version="1.0")
        ],
        capabilities=AgentCapabilities(streaming=True),
        default_input_modes=["text/plain"],
        default_output_modes=["text/plain"],
        skills=[AgentSkill(id="hello", name="Hello", description="Greets.", tags=["greeting"])],
    )
    handler = DefaultRequestHandler(
        agent_executor=HelloExecutor(), task_store=InMemoryTaskStore(), agent_card=card
    )
    app = Starlette(
        routes=[*create_agent_card_routes(card), *create_jsonrpc_routes(handler, "/rpc")]
    )
    uvicorn.run(app, host=h.HOST, port=port, log_level="warning", access_log=False)


def send_message_body() -> bytes:
    return json.dumps(
        {
            "jsonrpc": "2.0",
            "id": 1,
            "method": "SendMessage",
            "params": {
                "message": {
                    "messageId": str(uuid.uuid4()),
                    "role": "ROLE_USER",
                    "parts": [{"text": "bench"}],
                }
            },
        }
    ).encode()


def start_agent(procs: h.Processes, workdir: Path) -> h.Server:
    port = h.free_port()
    log_path = workdir / "agent.log"
    proc = procs.start(
        [sys.executable, str(Path(__file__).resolve()), "serve-agent", "--port", str(port)],
        env=h.clean_env({}),
        log_path=log_path,
    )
    server = h.Server("agent", f"http://{h.HOST}:{port}", proc, log_path)
    h.wait_healthy(server, "/.well-known/agent-card.json")
    return server


def prepare(hub: h.Server, agent: h.Server) -> tuple[str, str]:
    """Enroll the agent at its endpoint and a caller; return the gateway URL and a key."""
    with httpx.Client(base_url=hub.base_url, timeout=30) as client:
        owner = h.register_owner(client)
        key = Ed25519PrivateKey.generate()
        payload = h.enroll_payload(key, "bench hello") | {"endpoint_url": agent.base_url}
        started = client.post("/api/v1/agents/enroll", json=payload, headers=owner.headers)
        h.expect(started, 201)
        done = client.post(
            f"/api/v1/agents/enroll/{started.json()['enrollment_id']}/respond",
            json=h.respond_payload(key, started.json()["challenge"]),
        )
        h.expect(done, 201)
        agent_id = done.json()["agent_id"]
        h.expect(client.post(f"/api/v1/agents/{agent_id}/card/refresh", headers=owner.headers), 200)
        caller_key = h.enroll_agent(client, h.register_owner(client))
        url = f"{hub.base_url}/a2a/agents/{agent_id}"
        check = client.post(
            url,
            content=send_message_body(),
            headers={
                "Authorization": f"Bearer {caller_key}",
                "A2A-Version": "1.0",
                "Content-Type": "application/json",
            },
        )
        if check.status_code != 200 or EXPECT not in check.text:
            raise RuntimeError(f"a proxied call failed: {check.status_code} {check.text}")
    return url, caller_key


def run(
    url: str,
    headers: dict[str, str],
    body: Path,
    concurrency: int,
    seconds: float,
    pids: dict[str, int] | None = None,
) -> dict[str, Any]:
    before = {name: h.process_cpu_seconds(pid) for name, pid in (pids or {}).items()}
    result = h.run_pyload(
        url,
        headers=headers,
        concurrency=concurrency,
        duration_s=seconds,
        client="python-asyncio",
        body_file=body,
        expect=EXPECT,
    )
    entry = result.as_dict()
    for name, pid in (pids or {}).items():
        start, end = before[name], h.process_cpu_seconds(pid)
        if start is not None and end is not None and result.ok:
            entry[f"{name}_cpu_ms_per_call"] = round((end - start) * 1000 / result.ok, 3)
    return entry


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.command == "serve-agent":
        serve_agent(args.port)
        return 0
    started_at = h.now_iso()
    rounds: dict[str, list[dict[str, Any]]] = {}
    with h.workspace() as workdir, h.Processes() as procs:
        agent = start_agent(procs, workdir)
        hub_env = {"HERMES_ALLOW_PRIVATE_ENDPOINTS": "1", "HERMES_A2A_HEALTH_INTERVAL_SECONDS": "0"}
        hub = h.start_hub(
            procs,
            name="sqlite",
            workdir=workdir,
            database_url=f"sqlite+aiosqlite:///{workdir / 'sqlite' / 'hermes.db'}",
            redis_url=None,
            extra_env=hub_env,
        )
        gateway_url, caller_key = prepare(hub, agent)
        body = workdir / "send_message.json"
        body.write_bytes(send_message_body())
        a2a_headers = {"A2A-Version": "1.0", "Content-Type": "application/json"}
        targets = {
            "direct": (f"{agent.base_url}/rpc", a2a_headers),
            "hub": (gateway_url, a2a_headers | {"Authorization": f"Bearer {caller_key}"}),
        }
        pids = {"agent": agent.process.pid, "hub": hub.process.pid}
        for url, headers in targets.values():
            run(url, headers, body, args.concurrency, args.warmup)
        for callers in (1, args.concurrency):
            for index in range(args.rounds):
                order = list(targets) if index % 2 == 0 else list(reversed(targets))
                for name in order:
                    url, headers = targets[name]
                    entry = run(url, headers, body, callers, args.duration, pids)
                    entry |= {"round": index + 1, "callers": callers, "loadavg": h.loadavg()}
                    rounds.setdefault(f"{name}@{callers}", []).append(entry)
                    print(f"{callers:2d} callers, round {index + 1} {name:6s} {h.describe(entry)}")
                    if entry["errors"]:
                        print(f"warning: {name}: {entry['error_detail']}")
        log_events = hub.log_events()

    def median(key: str, field: str) -> float:
        return statistics.median(r[field] for r in rounds[key] if r[field] is not None)

    def added(field: str, callers: int) -> float:
        return round(median(f"hub@{callers}", field) - median(f"direct@{callers}", field), 3)

    many = args.concurrency
    summary: dict[str, Any] = {
        "added_p50_ms_one_caller": added("p50_ms", 1),
        "added_p95_ms_one_caller": added("p95_ms", 1),
        f"added_p50_ms_{many}_callers": added("p50_ms", many),
        f"added_p95_ms_{many}_callers": added("p95_ms", many),
        "throughput_ratio": round(
            median(f"hub@{many}", "requests_per_s") / median(f"direct@{many}", "requests_per_s"), 3
        ),
    }
    summary["hub_cpu_ms_per_call"] = median(f"hub@{many}", "hub_cpu_ms_per_call")
    summary["agent_cpu_ms_per_call"] = median(f"direct@{many}", "agent_cpu_ms_per_call")
    summary["meets_added_p50_goal"] = summary["added_p50_ms_one_caller"] < GOAL_ADDED_P50_MS
    summary["meets_throughput_goal"] = summary["throughput_ratio"] >= GOAL_THROUGHPUT_RATIO
    data = {
        "benchmark": "a2a",
        "started_at": started_at,
        "finished_at": h.now_iso(),
        "machine": h.machine_info(),
        "settings": {
            "duration_s": args.duration,
            "rounds": args.rounds,
            "concurrency": args.concurrency,
            "hub": "hermes serve, 1 worker, SQLite; caller authenticated by agent API key",
            "agent": "a2a-sdk DefaultRequestHandler, answers with one text message",
            "load": "raw asyncio keep-alive client in its own process",
        },
        "goals": {"added_p50_ms": GOAL_ADDED_P50_MS, "throughput_ratio": GOAL_THROUGHPUT_RATIO},
        "summary": summary,
        "medians": {
            key: {
                field: median(key, field)
                for field in ("requests_per_s", "p50_ms", "p95_ms")
                + (("hub_cpu_ms_per_call",) if key.startswith("hub") else ())
                + ("agent_cpu_ms_per_call",)
            }
            for key in rounds
        },
        "rounds": rounds,
        "hub_log_warnings": log_events,
    }
    h.write_results(args.output, data)
    print(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
