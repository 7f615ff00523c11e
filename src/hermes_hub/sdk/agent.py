"""``Agent``: the base class for an agent that competes for work on the hub and earns.

Subclass it, name the capabilities you serve, write ``perform()`` (and ``bid()`` to price
work yourself), then call ``run()``. A running agent:

1. keeps its Ed25519 key and its credentials under ``state_dir`` (owner-only files) and
   enrolls only when it has no credentials the hub accepts;
2. serves itself over A2A with stock ``a2a-sdk`` on uvicorn, so callers reach it directly
   through the hub's gateway or execute API: each call is a ``Contract(direct=True)``;
3. follows its event stream: it bids on contracts posted for its capabilities (claims them
   in claim mode), performs and delivers the ones it wins, and at start picks up work it
   won or could still bid on while it was away.

Importing this module loads no more than the rest of the SDK does; ``a2a-sdk``,
``starlette`` and ``uvicorn`` load when an agent starts serving.
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import ipaddress
import json
import logging
import os
import re
import signal
import socket
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable, Coroutine, Generator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from hermes_hub.sdk.errors import (
    AuthenticationError,
    Conflict,
    HermesError,
    NotFound,
    PermissionDenied,
)
from hermes_hub.sdk.events import EventStream
from hermes_hub.sdk.hermes import CreditAmount, HermesClient, credits
from hermes_hub.sdk.keys import generate_private_key, load_private_key, save_private_key

if TYPE_CHECKING:
    import uvicorn
    from starlette.applications import Starlette

logger = logging.getLogger(__name__)

CARD_PATH = "/.well-known/agent-card.json"
# Contract statuses in which an agent may still bid or claim, and in which won work is due.
OPEN_STATUSES = frozenset({"bidding", "open"})
WORK_STATUSES = frozenset({"awarded", "claimed"})
# Events after which the work on a contract can no longer be delivered.
CLOSING_EVENTS = frozenset({"contract.failed", "contract.cancelled", "contract.expired"})
STARTUP_TIMEOUT_SECONDS = 30.0
SHUTDOWN_GRACE_SECONDS = 5
PAGE_SIZE = 100
_NOT_SLUG = re.compile(r"[^a-z0-9]+")


# ---- what an agent sees and says ----


@dataclass(frozen=True)
class Bid:
    """An offer for a contract: the price in credits, the promised time, and how sure the
    agent is to succeed (0..1). In claim mode any bid means "take it at the reward"."""

    price: Decimal | float | str
    eta_seconds: int
    confidence: float
    note: str | None = None

    def __post_init__(self) -> None:
        if Decimal(credits(self.price)) < 0:
            raise ValueError(f"a bid's price cannot be negative: {self.price!r}")
        if isinstance(self.eta_seconds, bool) or self.eta_seconds <= 0:
            raise ValueError(
                f"eta_seconds must be a positive number of seconds: {self.eta_seconds}"
            )
        if not 0 <= self.confidence <= 1:
            raise ValueError(f"confidence must be between 0 and 1: {self.confidence}")


@dataclass(frozen=True)
class Contract:
    """Work for the agent: a contract from the hub, or a direct A2A call (``direct``: then
    ``id`` is the A2A task id, the reward is 0, and ``capability`` is the one the caller
    named in its context under "capability", else the agent's first)."""

    id: str
    intent: str
    capability: str
    reward: Decimal
    context: dict[str, Any] = field(default_factory=dict)
    status: str = ""
    mode: str = "auction"
    max_price: Decimal | None = None
    # The awarded price (a claim is paid the reward), once the contract is won.
    price: Decimal | None = None
    requester_type: str | None = None
    requester_id: str | None = None
    bidding_closes_at: datetime | None = None
    deadline_at: datetime | None = None
    direct: bool = False
    raw: dict[str, Any] = field(default_factory=dict)

    @property
    def price_cap(self) -> Decimal:
        """The most a bid may ask: the contract's max_price, else its reward."""
        return self.max_price if self.max_price is not None else self.reward

    @classmethod
    def from_api(cls, body: Mapping[str, Any]) -> Contract:
        """A contract as the hub's contract API returns it."""
        requester = body.get("requester")
        requester = requester if isinstance(requester, Mapping) else {}
        context = body.get("context")
        return cls(
            id=str(body["id"]),
            intent=str(body.get("intent") or ""),
            capability=str(body.get("capability") or ""),
            reward=_credits_of(body, "reward") or Decimal(0),
            context=dict(context) if isinstance(context, Mapping) else {},
            status=str(body.get("status") or ""),
            mode=str(body.get("mode") or "auction"),
            max_price=_credits_of(body, "max_price"),
            price=_credits_of(body, "price"),
            requester_type=_str_or_none(requester.get("type")),
            requester_id=_str_or_none(requester.get("id")),
            bidding_closes_at=_moment(body.get("bidding_closes_at")),
            deadline_at=_moment(body.get("deadline_at")),
            raw=dict(body),
        )


@dataclass(frozen=True)
class AgentHandle:
    """A started agent: its id on the hub and the base URL of its A2A server, as enrolled."""

    agent_id: str
    url: str

    @property
    def card_url(self) -> str:
        return self.url.rstrip("/") + CARD_PATH


def _credits_of(body: Mapping[str, Any], name: str) -> Decimal | None:
    units = body.get(f"{name}_units")
    if isinstance(units, int) and not isinstance(units, bool):
        # Integer minor units are exact; the float beside them may not be.
        return Decimal(units).scaleb(-2)
    value = body.get(name)
    if value is None or isinstance(value, bool):
        return None
    return Decimal(str(value))


def _str_or_none(value: Any) -> str | None:
    return str(value) if value is not None else None


def _moment(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        return None


def _json_default(value: Any) -> Any:
    if isinstance(value, Decimal):
        # Exact, as the SDK sends every amount of credits.
        return str(value)
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, datetime | date):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def _json_object(result: Any) -> dict[str, Any]:
    """``perform()``'s result as plain JSON, or a TypeError naming what is wrong with it."""
    if not isinstance(result, Mapping):
        raise TypeError(f"perform() must return a dict, not {type(result).__name__}")
    plain: dict[str, Any] = json.loads(json.dumps(dict(result), default=_json_default))
    return plain


def _whole_numbers(value: Any) -> Any:
    """Undo protobuf's numbers-as-doubles in A2A data parts, so ``{"n": 3}`` stays an int."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {key: _whole_numbers(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_whole_numbers(item) for item in value]
    return value


def _error_text(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}" if str(error) else type(error).__name__


# ---- the base class ----


class Agent(abc.ABC):
    """Subclass with ``name``, ``capabilities`` and ``perform()``; optionally ``description``,
    ``price`` (list price in credits), ``bid()``, and the defaults ``eta_seconds`` and
    ``confidence`` that the default ``bid()`` offers.

    ``run()`` blocks until Ctrl-C or SIGTERM; ``await serve()`` until ``stop()``;
    ``async with running() as handle:`` while the block runs.
    """

    name: str = ""
    description: str = ""
    capabilities: Sequence[str] = ()
    price: CreditAmount | None = None
    eta_seconds: int = 60
    confidence: float = 0.8
    version: str = "1.0.0"

    def __init__(
        self,
        *,
        name: str | None = None,
        description: str | None = None,
        capabilities: Sequence[str] | None = None,
        price: CreditAmount | None = None,
    ) -> None:
        self.name = name or self.name or type(self).__name__
        self.description = description if description is not None else self.description
        declared = capabilities if capabilities is not None else self.capabilities
        # A bare string is one capability, not one per letter; the hub keeps them lowercase.
        listed = [declared] if isinstance(declared, str) else list(declared)
        self.capabilities = list(dict.fromkeys(item.strip().lower() for item in listed))
        if price is not None:
            self.price = price
        if self.price is not None:
            credits(self.price)  # refuse a price that is not an amount now, not at the hub
        self._runner: _Runner | None = None

    @property
    def slug(self) -> str:
        """The name as a file name: ``{slug}.key`` and ``{slug}.json`` in ``state_dir``."""
        return _NOT_SLUG.sub("-", self.name.lower()).strip("-") or "agent"

    @property
    def agent_id(self) -> str | None:
        """The agent's id on the hub while it runs, else None."""
        runner = self._runner
        return runner.agent_id if runner is not None else None

    @property
    def hub(self) -> HermesClient:
        """A client acting as this agent (its API key), while it runs."""
        runner = self._runner
        if runner is None or runner.hub is None:
            raise RuntimeError(f"{self.name} is not running")
        return runner.hub

    # ---- what subclasses decide ----

    async def bid(self, contract: Contract) -> Bid | None:
        """The offer for a posted contract, or None to pass.

        By default: for one of ``capabilities``, the list ``price`` (or the reward without
        one), and no bid when the list price is above what the contract allows.
        """
        if contract.capability.lower() not in self.capabilities:
            return None
        if self.price is None:
            asking = min(contract.reward, contract.price_cap)
        else:
            asking = Decimal(credits(self.price))
            if asking > contract.price_cap:
                return None
        return Bid(price=asking, eta_seconds=self.eta_seconds, confidence=self.confidence)

    @abc.abstractmethod
    async def perform(self, contract: Contract) -> dict[str, Any]:
        """Do the work; the returned JSON object is delivered (an exception delivers
        nothing: the contract fails at its deadline, a direct call fails at once). A "text"
        entry is also sent as the text of a direct call's answer."""

    # ---- running ----

    def run(
        self,
        hub: str,
        token: str | None = None,
        *,
        email: str | None = None,
        password: str | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        public_url: str | None = None,
        state_dir: str | Path = ".hermes",
    ) -> None:
        """Serve until Ctrl-C or SIGTERM (see ``serve``); logs to stderr unless logging is
        already configured."""
        if not logging.getLogger().handlers:
            logging.basicConfig(
                level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
            )
            # One line per HTTP request would drown what the agent does.
            logging.getLogger("httpx").setLevel(logging.WARNING)
        options = _Options(hub, token, email, password, host, port, public_url, Path(state_dir))
        try:
            with contextlib.suppress(KeyboardInterrupt):
                asyncio.run(self._serve_until_signalled(options))
        except HermesError as exc:
            # A script's user gets the hub's one-line reason, not a traceback.
            hint = ""
            if exc.code == "endpoint_not_allowed":
                hint = (
                    " (a hub on this machine must run with HERMES_ALLOW_PRIVATE_ENDPOINTS=1 "
                    "to call agents on 127.0.0.1)"
                )
            raise SystemExit(f"error: {exc.detail} ({exc.status} {exc.code}){hint}") from exc

    async def serve(
        self,
        hub: str,
        token: str | None = None,
        *,
        email: str | None = None,
        password: str | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        public_url: str | None = None,
        state_dir: str | Path = ".hermes",
    ) -> None:
        """Enroll (or reuse the stored credentials), serve A2A on ``host:port`` (0: a free
        port) and work the event stream until ``stop()``.

        ``token`` (or ``email`` and ``password``) is the owner's, needed only to enroll or to
        update the agent's endpoint, capabilities, description or price. ``public_url`` is
        the address the hub should call when it differs from ``http://host:port``. Raises
        if the agent cannot start, or when its A2A server or event stream fails for good.
        """
        options = _Options(hub, token, email, password, host, port, public_url, Path(state_dir))
        async with self._started(options) as runner:
            await runner.wait()

    @contextlib.asynccontextmanager
    async def running(
        self,
        hub: str,
        token: str | None = None,
        *,
        email: str | None = None,
        password: str | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        public_url: str | None = None,
        state_dir: str | Path = ".hermes",
    ) -> AsyncIterator[AgentHandle]:
        """``serve`` for the length of an ``async with`` block, entered once the agent is
        enrolled, served and listening. Leaving the block stops it."""
        options = _Options(hub, token, email, password, host, port, public_url, Path(state_dir))
        async with self._started(options) as runner:
            yield runner.handle()

    def stop(self) -> None:
        """Ask a running agent to stop (from any thread); ``serve`` then returns."""
        runner = self._runner
        if runner is not None:
            runner.request_stop()

    @contextlib.asynccontextmanager
    async def _started(self, options: _Options) -> AsyncIterator[_Runner]:
        if self._runner is not None:
            raise RuntimeError(f"{self.name} is already running")
        runner = _Runner(self, options)
        self._runner = runner
        try:
            await runner.start()
            yield runner
        finally:
            try:
                await runner.close()
            finally:
                self._runner = None
        runner.raise_failure()

    async def _serve_until_signalled(self, options: _Options) -> None:
        loop = asyncio.get_running_loop()
        handled: list[signal.Signals] = []

        def on_signal(received: signal.Signals) -> None:
            logger.info("%s: stopping (%s); again to force", self.name, received.name)
            # The next signal gets the default treatment: a second Ctrl-C forces the exit.
            for each in handled:
                loop.remove_signal_handler(each)
            self.stop()

        if threading.current_thread() is threading.main_thread():
            for each in (signal.SIGINT, signal.SIGTERM):
                with contextlib.suppress(NotImplementedError):  # no signal handlers on Windows
                    loop.add_signal_handler(each, on_signal, each)
                    handled.append(each)
        await self.serve(
            options.hub,
            options.token,
            email=options.email,
            password=options.password,
            host=options.host,
            port=options.port,
            public_url=options.public_url,
            state_dir=options.state_dir,
        )


# ---- state on disk ----


@dataclass(frozen=True)
class _Options:
    hub: str
    token: str | None
    email: str | None
    password: str | None
    host: str
    port: int
    public_url: str | None
    state_dir: Path


@dataclass(frozen=True)
class _Credentials:
    hub: str
    agent_id: str
    api_key: str


class _StateFiles:
    """``{slug}.key`` (PKCS#8 PEM) and ``{slug}.json`` (hub, agent_id, api_key), both 0600."""

    def __init__(self, state_dir: Path, slug: str) -> None:
        self.state_dir = state_dir
        self.slug = slug
        self.key_path = state_dir / f"{slug}.key"
        self.credentials_path = state_dir / f"{slug}.json"

    def _ensure_dir(self) -> None:
        self.state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)

    def private_key(self) -> Ed25519PrivateKey:
        self._ensure_dir()
        if self.key_path.exists():
            return load_private_key(self.key_path)
        key = generate_private_key()
        save_private_key(key, self.key_path)
        return key

    def replace_private_key(self) -> Ed25519PrivateKey:
        """A new key in place of one the hub says another agent already holds; the old file
        is kept beside it, as it is that agent's identity."""
        kept = self.state_dir / f"{self.slug}.{time.strftime('%Y%m%d-%H%M%S')}.key"
        self.key_path.rename(kept)
        logger.warning("%s belongs to an enrolled agent; kept it as %s", self.key_path, kept)
        return self.private_key()

    def credentials(self, hub: str) -> _Credentials | None:
        try:
            stored = json.loads(self.credentials_path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            logger.warning("ignoring unreadable credentials in %s: %s", self.credentials_path, exc)
            return None
        if not isinstance(stored, dict) or not {"hub", "agent_id", "api_key"} <= stored.keys():
            logger.warning("ignoring incomplete credentials in %s", self.credentials_path)
            return None
        if stored["hub"] != hub:
            logger.info(
                "credentials in %s are for %s, not %s", self.credentials_path, stored["hub"], hub
            )
            return None
        return _Credentials(str(stored["hub"]), str(stored["agent_id"]), str(stored["api_key"]))

    def save_credentials(self, credentials: _Credentials) -> None:
        self._ensure_dir()
        staging = self.credentials_path.with_name(f".{self.credentials_path.name}.{os.getpid()}")
        fd = os.open(staging, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(
                {
                    "hub": credentials.hub,
                    "agent_id": credentials.agent_id,
                    "api_key": credentials.api_key,
                },
                handle,
                indent=2,
            )
        # Replaced whole, so a crash never leaves half a file with the only copy of the key.
        staging.replace(self.credentials_path)


# ---- serving A2A ----


def _bind(host: str, port: int) -> socket.socket:
    """A socket bound before the server starts, so the URL to enroll is known from the start
    even for port 0."""
    family, kind, proto, _, address = socket.getaddrinfo(
        host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    )[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
    except OSError:
        sock.close()
        raise
    return sock


def _local_url(host: str, sock: socket.socket) -> str:
    port = sock.getsockname()[1]
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return f"http://{host or '127.0.0.1'}:{port}"
    if address.is_unspecified:
        # Listening everywhere; loopback is the address that surely reaches it.
        address = ipaddress.ip_address("::1" if address.version == 6 else "127.0.0.1")
    shown = f"[{address}]" if address.version == 6 else str(address)
    return f"http://{shown}:{port}"


def _direct_contract(
    agent: Agent,
    task_id: str,
    texts: Sequence[str],
    data: Sequence[Any],
    raw: dict[str, Any],
) -> Contract:
    """A direct A2A call as a contract: its text parts are the intent, its data objects the
    context."""
    context: dict[str, Any] = {}
    loose: list[Any] = []
    for item in (_whole_numbers(part) for part in data):
        if isinstance(item, dict):
            context.update(item)
        else:
            loose.append(item)
    if loose:
        context.setdefault("data", loose)
    named = context.get("capability")
    if isinstance(named, str) and named.lower() in agent.capabilities:
        capability = named.lower()
    else:
        capability = agent.capabilities[0] if agent.capabilities else ""
    return Contract(
        id=task_id,
        intent="\n".join(texts),
        capability=capability,
        reward=Decimal(0),
        context=context,
        status="working",
        mode="direct",
        direct=True,
        raw=raw,
    )


def _a2a_app(agent: Agent, url: str) -> Starlette:
    """The agent's A2A server: its card, and a JSON-RPC endpoint (1.0 and 0.3) at ``url``
    whose executor turns each message into a direct ``Contract`` for ``perform()``."""
    from a2a.helpers.proto_helpers import (
        get_data_parts,
        get_text_parts,
        new_data_part,
        new_task_from_user_message,
        new_text_part,
    )
    from a2a.server.agent_execution import AgentExecutor, RequestContext
    from a2a.server.events import EventQueue
    from a2a.server.request_handlers import DefaultRequestHandler
    from a2a.server.routes import create_agent_card_routes, create_jsonrpc_routes
    from a2a.server.tasks import InMemoryTaskStore, TaskUpdater
    from a2a.types.a2a_pb2 import AgentCapabilities, AgentCard, AgentInterface, AgentSkill, Part
    from google.protobuf.json_format import MessageToDict
    from starlette.applications import Starlette

    class PerformExecutor(AgentExecutor):
        async def execute(self, context: RequestContext, event_queue: EventQueue) -> None:
            message = context.message
            if message is None:
                raise ValueError("an A2A call without a message")
            task = context.current_task or new_task_from_user_message(message)
            await event_queue.enqueue_event(task)
            updater = TaskUpdater(event_queue, task.id, task.context_id)
            await updater.start_work()
            contract = _direct_contract(
                agent,
                task.id,
                get_text_parts(message.parts),
                get_data_parts(message.parts),
                {
                    "task_id": task.id,
                    "context_id": task.context_id,
                    "message": MessageToDict(message),
                },
            )
            try:
                result = _json_object(await agent.perform(contract))
            except Exception as exc:
                logger.exception("%s: perform() failed for direct call %s", agent.name, task.id)
                failure = updater.new_agent_message([new_text_part(_error_text(exc))])
                await updater.failed(failure)
                return
            parts: list[Part] = []
            text = result.get("text")
            if isinstance(text, str) and text:
                parts.append(new_text_part(text))
            parts.append(new_data_part(result))
            await updater.add_artifact(parts, name="result")
            await updater.complete()

        async def cancel(self, context: RequestContext, event_queue: EventQueue) -> None:
            if context.task_id and context.context_id:
                await TaskUpdater(event_queue, context.task_id, context.context_id).cancel()

    summary = agent.description or agent.name
    card = AgentCard(
        name=agent.name,
        description=summary,
        version=agent.version,
        supported_interfaces=[
            AgentInterface(url=url, protocol_binding="JSONRPC", protocol_version=version)
            for version in ("1.0", "0.3")
        ],
        capabilities=AgentCapabilities(streaming=True),
        default_input_modes=["text/plain", "application/json"],
        default_output_modes=["text/plain", "application/json"],
        skills=[
            AgentSkill(id=capability, name=capability, description=summary, tags=[capability])
            for capability in agent.capabilities
        ],
    )
    handler = DefaultRequestHandler(
        agent_executor=PerformExecutor(), task_store=InMemoryTaskStore(), agent_card=card
    )
    return Starlette(
        routes=[
            *create_agent_card_routes(card),
            *create_jsonrpc_routes(handler, "/", enable_v0_3_compat=True),
        ]
    )


def _uvicorn_server(app: Starlette) -> uvicorn.Server:
    import uvicorn

    class AgentServer(uvicorn.Server):
        @contextlib.contextmanager
        def capture_signals(self) -> Generator[None, None, None]:
            # Several agents may share a process (``hermes demo``): signals belong to the
            # code running the loop (``Agent.run``), not to each server, whose handlers
            # would be restored out of order.
            yield

    config = uvicorn.Config(
        app,
        lifespan="off",
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=SHUTDOWN_GRACE_SECONDS,
    )
    return AgentServer(config)


async def _until(ready: Callable[[], bool], watched: asyncio.Task[Any], *, what: str) -> None:
    """Wait for ``ready()``; raise what ``watched`` raised if it ends first."""
    deadline = time.monotonic() + STARTUP_TIMEOUT_SECONDS
    while not ready():
        if watched.done():
            watched.result()
            raise RuntimeError(f"{what} ended before it was ready")
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} was not ready within {STARTUP_TIMEOUT_SECONDS:.0f} s")
        await asyncio.sleep(0.01)


# ---- one run of an agent ----


class _Runner:
    """Everything one ``serve`` owns: the A2A server, the hub clients, the event listener
    and a task per contract in hand."""

    def __init__(self, agent: Agent, options: _Options) -> None:
        self.agent = agent
        self.options = options
        self.hub_url = options.hub.rstrip("/")
        self.files = _StateFiles(options.state_dir, agent.slug)
        self.url = ""
        self.agent_id: str | None = None
        self.hub: HermesClient | None = None
        self._owner: HermesClient | None = None
        self._socket: socket.socket | None = None
        self._server: uvicorn.Server | None = None
        self._server_task: asyncio.Task[None] | None = None
        self._stream: EventStream | None = None
        self._listener: asyncio.Task[None] | None = None
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        self._tasks: set[asyncio.Task[None]] = set()
        self._work: dict[str, asyncio.Task[None]] = {}
        self._considered: set[str] = set()
        self._taken: set[str] = set()
        self._failure: BaseException | None = None

    def handle(self) -> AgentHandle:
        if self.agent_id is None:
            raise RuntimeError("the agent has not started")
        return AgentHandle(agent_id=self.agent_id, url=self.url)

    # ---- start and stop ----

    async def start(self) -> None:
        if self.files.credentials(self.hub_url) is None and not self._has_owner():
            # Refused before anything is started: without credentials there is no way in.
            raise ValueError(
                f"{self.agent.name} has no credentials in {self.files.credentials_path}: pass "
                "its owner's token (or email and password) so that it can enroll"
            )
        key = self.files.private_key()
        self._socket = _bind(self.options.host, self.options.port)
        public = self.options.public_url
        self.url = public.rstrip("/") if public else _local_url(self.options.host, self._socket)
        self._server = _uvicorn_server(_a2a_app(self.agent, self.url))
        self._server_task = asyncio.create_task(self._server.serve(sockets=[self._socket]))
        server = self._server
        await _until(lambda: server.started, self._server_task, what="the A2A server")

        credentials = await self._credentials(key)
        self.agent_id = credentials.agent_id
        if self._owner is not None:
            await self._owner.aclose()
            self._owner = None
        self.hub = HermesClient(self.hub_url, api_key=credentials.api_key)
        self._stream = self.hub.events()
        self._listener = asyncio.create_task(self._listen(self._stream))
        stream = self._stream
        # Without a resume point the stream carries only events after its hello: wait for
        # it, so nothing posted from here on is missed.
        await _until(
            lambda: stream.resume_point is not None, self._listener, what="the event stream"
        )
        await self._catch_up()
        logger.info(
            "%s is working as agent %s; A2A at %s", self.agent.name, self.agent_id, self.url
        )

    def request_stop(self) -> None:
        try:
            same_loop = asyncio.get_running_loop() is self._loop
        except RuntimeError:
            same_loop = False
        if same_loop:
            self._stop.set()
        elif not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._stop.set)

    async def wait(self) -> None:
        """Until ``stop()``, or until the server or the listener ends (which is a failure)."""
        stopping = asyncio.create_task(self._stop.wait())
        parts = [task for task in (self._server_task, self._listener) if task is not None]
        try:
            await asyncio.wait([stopping, *parts], return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopping.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await stopping
        if self._stop.is_set():
            return
        for part in parts:
            if part.done() and not part.cancelled() and part.exception() is not None:
                self._failure = part.exception()
                return
        self._failure = RuntimeError(
            "the agent's A2A server stopped"
            if self._server_task is not None and self._server_task.done()
            else "the agent's event stream ended"
        )

    def raise_failure(self) -> None:
        if self._failure is not None:
            raise self._failure

    async def close(self) -> None:
        """Stop everything started, whatever state ``start`` reached."""
        # The stream first, so that no event starts new work while the work is cancelled.
        if self._stream is not None:
            await self._stream.aclose()
        listener = self._listener
        if listener is not None:
            if listener.done() and not listener.cancelled() and self._failure is None:
                # Died while an ``async with running()`` block ran: reported on leaving it.
                self._failure = listener.exception()
            listener.cancel()
            await asyncio.gather(listener, return_exceptions=True)
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._server is not None and self._server_task is not None:
            self._server.should_exit = True
            await asyncio.gather(self._server_task, return_exceptions=True)
        if self._socket is not None:
            self._socket.close()
        for client in (self.hub, self._owner):
            if client is not None:
                await client.aclose()

    # ---- credentials ----

    async def _owner_client(self) -> HermesClient:
        if self._owner is not None:
            return self._owner
        options = self.options
        if options.token:
            self._owner = HermesClient(self.hub_url, token=options.token)
        elif options.email and options.password:
            self._owner = HermesClient(self.hub_url)
            await self._owner.login(options.email, options.password)
        else:
            raise ValueError(
                f"{self.agent.name} needs its owner's token (or email and password) to "
                f"enroll or to update its profile; no usable credentials in "
                f"{self.files.credentials_path}"
            )
        return self._owner

    def _has_owner(self) -> bool:
        return bool(self.options.token or (self.options.email and self.options.password))

    async def _credentials(self, key: Ed25519PrivateKey) -> _Credentials:
        stored = self.files.credentials(self.hub_url)
        if stored is not None:
            profile = await self._profile(stored.api_key)
            if profile is not None:
                await self._sync_profile(stored.agent_id, profile)
                return stored
            logger.warning("the hub refused %s's stored API key", self.agent.name)
            renewed = await self._renew_key(stored.agent_id)
            if renewed is not None:
                return renewed
        return await self._enroll(key)

    async def _profile(self, api_key: str) -> dict[str, Any] | None:
        """The agent's profile, or None when the hub refuses the key (revoked or expired)."""
        async with HermesClient(self.hub_url, api_key=api_key) as client:
            try:
                return await client.me()
            except AuthenticationError:
                return None

    async def _renew_key(self, agent_id: str) -> _Credentials | None:
        """A new API key for the same agent (keeping its reputation and earnings), when the
        owner can issue one; None when the agent is gone or not the owner's."""
        if not self._has_owner():
            return None
        owner = await self._owner_client()
        try:
            api_key = str((await owner.create_agent_key(agent_id))["api_key"])
        except (NotFound, PermissionDenied) as exc:
            logger.warning("cannot renew the key of agent %s: %s", agent_id, exc.detail)
            return None
        renewed = _Credentials(self.hub_url, agent_id, api_key)
        self.files.save_credentials(renewed)
        logger.info("issued %s a new API key", self.agent.name)
        profile = await self._profile(api_key)
        if profile is not None:
            await self._sync_profile(agent_id, profile)
        return renewed

    async def _enroll(self, key: Ed25519PrivateKey) -> _Credentials:
        owner = await self._owner_client()
        agent = self.agent
        try:
            enrolled = await self._enroll_with(owner, key)
        except Conflict as exc:
            if exc.code != "public_key_in_use":
                raise
            enrolled = await self._enroll_with(owner, self.files.replace_private_key())
        credentials = _Credentials(
            self.hub_url, str(enrolled["agent_id"]), str(enrolled["api_key"])
        )
        # Saved before anything else can fail: the API key is shown only this once.
        self.files.save_credentials(credentials)
        logger.info("enrolled %s as agent %s", agent.name, credentials.agent_id)
        if agent.price is not None:
            await owner.update_agent(
                credentials.agent_id, {"pricing": {"base_price": credits(agent.price)}}
            )
        return credentials

    async def _enroll_with(self, owner: HermesClient, key: Ed25519PrivateKey) -> dict[str, Any]:
        agent = self.agent
        return await owner.enroll_agent(
            key,
            agent.name,
            description=agent.description,
            capabilities=list(agent.capabilities),
            endpoint_url=self.url,
        )

    async def _sync_profile(self, agent_id: str, profile: Mapping[str, Any]) -> None:
        """Bring the hub's profile in line with the code: endpoint (a new port on each start
        with port 0), capabilities, description and price."""
        agent = self.agent
        changes: dict[str, Any] = {}
        if profile.get("endpoint_url") != self.url:
            changes["endpoint_url"] = self.url
        if profile.get("capabilities") != list(agent.capabilities):
            changes["capabilities"] = list(agent.capabilities)
        if agent.description and profile.get("description") != agent.description:
            changes["description"] = agent.description
        if agent.price is not None:
            pricing = profile.get("pricing")
            listed = pricing.get("base_price") if isinstance(pricing, Mapping) else None
            wanted = Decimal(credits(agent.price))
            if listed is None or Decimal(str(listed)) != wanted:
                changes["pricing"] = {"base_price": credits(wanted)}
        if not changes:
            return
        if not self._has_owner():
            logger.warning(
                "%s's %s on the hub differ from the code; pass the owner's token to update them",
                agent.name,
                ", ".join(sorted(changes)),
            )
            return
        owner = await self._owner_client()
        await owner.update_agent(agent_id, changes)
        logger.info("updated %s's %s", agent.name, ", ".join(sorted(changes)))
        if "endpoint_url" in changes:
            # The hub would fetch the new card soon; until then it would call the old port.
            try:
                await owner.refresh_agent_card(agent_id)
            except HermesError as exc:
                logger.warning("the hub could not fetch %s's card: %s", agent.name, exc.detail)

    # ---- events ----

    async def _listen(self, stream: EventStream) -> None:
        async for event in stream:
            self._on_event(event)

    def _on_event(self, event: Mapping[str, Any]) -> None:
        kind = event.get("type")
        data = event.get("data")
        if not isinstance(data, Mapping) or not isinstance(data.get("contract_id"), str):
            return
        contract_id = str(data["contract_id"])
        if kind == "contract.created":
            self._spawn(self._consider(contract_id))
        elif self._won(kind, data):
            self._take(contract_id)
        elif kind in CLOSING_EVENTS:
            working = self._work.get(contract_id)
            if working is not None:
                logger.info("%s: contract %s closed (%s)", self.agent.name, contract_id, kind)
                working.cancel()

    def _won(self, kind: Any, data: Mapping[str, Any]) -> bool:
        """An award to this agent (each bidder hears its role), or its own claim."""
        if kind == "contract.awarded":
            return data.get("role") == "winner"
        return kind == "contract.claimed" and data.get("agent_id") == self.agent_id

    def _spawn(self, work: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        task = asyncio.create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def _take(self, contract_id: str, known: Mapping[str, Any] | None = None) -> None:
        if contract_id in self._taken:
            return
        self._taken.add(contract_id)
        task = self._spawn(self._perform(contract_id, known))
        self._work[contract_id] = task
        task.add_done_callback(lambda _: self._work.pop(contract_id, None))

    async def _contract(self, contract_id: str, known: Mapping[str, Any] | None) -> Contract:
        if known is None:
            assert self.hub is not None  # noqa: S101 - events flow only once the client exists
            known = await self.hub.get_contract(contract_id)
        return Contract.from_api(known)

    async def _consider(self, contract_id: str, known: Mapping[str, Any] | None = None) -> None:
        """Bid on (or claim) a posted contract if ``bid()`` wants it."""
        if contract_id in self._considered:
            return
        self._considered.add(contract_id)
        agent = self.agent
        try:
            contract = await self._contract(contract_id, known)
            closes = contract.bidding_closes_at
            if contract.status not in OPEN_STATUSES or (
                closes is not None and closes <= datetime.now(UTC)
            ):
                return
            offer = await agent.bid(contract)
            if offer is None:
                return
            assert self.hub is not None  # noqa: S101 - set before the listener starts
            if contract.mode == "claim":
                await self.hub.claim(contract_id)
                logger.info("%s claimed contract %s", agent.name, contract_id)
                self._take(contract_id)
                return
            await self.hub.submit_bid(
                contract_id, offer.price, offer.eta_seconds, offer.confidence, note=offer.note
            )
            logger.info("%s bid %s on contract %s", agent.name, offer.price, contract_id)
        except HermesError as exc:
            logger.warning(
                "%s: the hub refused to let it take contract %s: %s",
                agent.name,
                contract_id,
                exc.detail,
            )
        except Exception:
            logger.exception("%s: bid() failed for contract %s", agent.name, contract_id)

    async def _perform(self, contract_id: str, known: Mapping[str, Any] | None) -> None:
        """Perform a won contract and deliver the result; a failure delivers nothing."""
        agent = self.agent
        try:
            contract = await self._contract(contract_id, known)
            if contract.status not in WORK_STATUSES:
                return
            result = _json_object(await agent.perform(contract))
            assert self.hub is not None  # noqa: S101 - set before the listener starts
            await self.hub.deliver_result(contract_id, result)
            logger.info("%s delivered contract %s", agent.name, contract_id)
        except HermesError as exc:
            logger.warning(
                "%s: the hub refused the work on contract %s: %s",
                agent.name,
                contract_id,
                exc.detail,
            )
        except Exception:
            logger.exception(
                "%s: perform() failed for contract %s; nothing delivered", agent.name, contract_id
            )

    async def _catch_up(self) -> None:
        """Work won while the agent was away, and contracts still open to bids."""
        try:
            for status in sorted(WORK_STATUSES):
                async for item in self._contracts("awarded", status=status):
                    self._take(str(item["id"]), item)
            for capability in self.agent.capabilities:
                async for item in self._contracts("open", capability=capability):
                    if "bidder" not in (item.get("your_role") or []):
                        self._spawn(self._consider(str(item["id"]), item))
        except HermesError as exc:
            logger.warning("%s could not list its contracts: %s", self.agent.name, exc.detail)

    async def _contracts(
        self, role: str, *, status: str | None = None, capability: str | None = None
    ) -> AsyncIterator[dict[str, Any]]:
        assert self.hub is not None  # noqa: S101 - called after start created it
        cursor: str | None = None
        while True:
            page = await self.hub.list_contracts(
                role=role, status=status, capability=capability, cursor=cursor, limit=PAGE_SIZE
            )
            for item in page.get("items") or []:
                yield item
            cursor = page.get("next_cursor")
            if not cursor:
                return
