from __future__ import annotations

import asyncio
import contextlib
import functools
import ipaddress
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable

import httpx
import pytest

from hermes_hub.kit.safe_http import (
    BadStatusError,
    DeadlineExceededError,
    FetchError,
    FetchTimeoutError,
    InvalidJSONError,
    OutboundBlockedError,
    OutboundPolicy,
    ResponseTooLargeError,
    SchemeNotAllowedError,
    TooManyRedirectsError,
    UnreachableError,
    fetch_json,
    guarded_client,
    is_public_address,
    system_resolver,
)

PUBLIC_IP = "93.184.216.34"
STRICT = OutboundPolicy()
DEV = OutboundPolicy(allow_private=True)

Handler = Callable[[httpx.Request], httpx.Response]
Responder = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


def resolver_for(table: dict[str, list[str]]) -> Callable[[str, int], Awaitable[list[str]]]:
    async def resolve(host: str, port: int) -> list[str]:
        if host not in table:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return table[host]

    return resolve


class Recorder:
    """An inner MockTransport that remembers what reached the network side of the guard."""

    def __init__(self, handler: Handler | None = None) -> None:
        self.requests: list[httpx.Request] = []
        self._handler = handler or (lambda request: httpx.Response(200, json={"ok": True}))
        self.transport = httpx.MockTransport(self._record)

    def _record(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return self._handler(request)


def mock_client(
    recorder: Recorder,
    table: dict[str, list[str]] | None = None,
    policy: OutboundPolicy = STRICT,
) -> httpx.AsyncClient:
    resolver = resolver_for({"agent.example": [PUBLIC_IP], **(table or {})})
    return guarded_client(policy, transport=recorder.transport, resolver=resolver)


@pytest.mark.parametrize(
    ("url", "table"),
    [
        ("http://127.0.0.1/", {}),
        ("http://localhost/", {"localhost": ["127.0.0.1"]}),
        ("http://[::1]/", {}),
        ("http://[::ffff:127.0.0.1]/", {}),
        ("http://10.0.0.1/", {}),
        ("http://192.168.1.1/", {}),
        ("http://172.16.0.1/", {}),
        ("http://100.64.0.1/", {}),
        ("http://169.254.169.254/latest/meta-data/", {}),
        ("http://0.0.0.0/", {}),
        ("http://224.0.0.1/", {}),
        ("http://[fe80::1]/", {}),
        ("http://[fc00::1]/", {}),
        ("http://[ff02::1]/", {}),
        ("http://[64:ff9b::a9fe:a9fe]/", {}),
        ("http://[2002:7f00:1::]/", {}),
        ("http://mixed.example/", {"mixed.example": [PUBLIC_IP, "10.0.0.7"]}),
        ("http://decimal.example/", {"decimal.example": ["127.0.0.1"]}),
        ("https://agent.example/", {"agent.example": ["::ffff:169.254.169.254"]}),
    ],
)
async def test_non_public_destinations_are_refused_before_any_connection(
    url: str, table: dict[str, list[str]]
) -> None:
    recorder = Recorder()
    async with mock_client(recorder, table) as client:
        with pytest.raises(OutboundBlockedError) as caught:
            await client.get(url)
    assert caught.value.code == "blocked_address"
    assert "refusing to connect" in str(caught.value)
    assert recorder.requests == []


async def test_refusal_names_the_host_but_not_the_internal_address_it_resolved_to() -> None:
    recorder = Recorder()
    async with mock_client(recorder, {"intranet.example": ["10.1.2.3"]}) as client:
        with pytest.raises(OutboundBlockedError) as caught:
            await client.get("http://intranet.example/")
    assert "intranet.example" in str(caught.value)
    assert "10.1.2.3" not in str(caught.value)
    assert caught.value.address == "10.1.2.3"


@pytest.mark.parametrize("url", ["ftp://agent.example/card", "file:///etc/passwd"])
async def test_non_http_schemes_are_refused(url: str) -> None:
    recorder = Recorder()
    async with mock_client(recorder) as client:
        with pytest.raises(SchemeNotAllowedError) as caught:
            await client.get(url)
    assert caught.value.code == "blocked_scheme"
    assert recorder.requests == []


async def test_https_request_is_pinned_to_the_checked_address_and_verifies_the_real_name() -> None:
    recorder = Recorder()
    async with mock_client(recorder) as client:
        response = await client.get("https://agent.example:8443/.well-known/agent-card.json")

    assert response.status_code == 200
    assert str(response.request.url) == "https://agent.example:8443/.well-known/agent-card.json"
    [seen] = recorder.requests
    assert seen.url.host == PUBLIC_IP
    assert seen.url.port == 8443
    assert seen.url.path == "/.well-known/agent-card.json"
    assert seen.headers["Host"] == "agent.example:8443"
    assert seen.extensions["sni_hostname"] == "agent.example"


async def test_plain_http_is_pinned_without_sni_and_ipv6_addresses_are_bracketed() -> None:
    recorder = Recorder()
    table = {"v6.example": ["2606:4700::6810:84e5"]}
    async with mock_client(recorder, table) as client:
        await client.get("http://v6.example/a2a")
    [seen] = recorder.requests
    assert str(seen.url) == "http://[2606:4700::6810:84e5]/a2a"
    assert seen.headers["Host"] == "v6.example"
    assert "sni_hostname" not in seen.extensions


async def test_an_unroutable_address_falls_back_to_the_next_checked_one() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.host == "2606:4700::1":
            raise httpx.ConnectError("network is unreachable", request=request)
        return httpx.Response(200)

    recorder = Recorder(handler)
    async with mock_client(recorder, {"dual.example": ["2606:4700::1", PUBLIC_IP]}) as client:
        response = await client.get("http://dual.example/")
    assert response.status_code == 200
    assert [seen.url.host for seen in recorder.requests] == ["2606:4700::1", PUBLIC_IP]


async def test_a_redirect_to_the_metadata_address_is_refused_at_the_second_hop() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(302, headers={"Location": "http://169.254.169.254/latest/meta-data/"})

    recorder = Recorder(handler)
    async with mock_client(recorder) as client:
        with pytest.raises(OutboundBlockedError):
            await client.get("https://agent.example/.well-known/agent-card.json")
    assert [seen.url.host for seen in recorder.requests] == [PUBLIC_IP]


async def test_a_redirect_to_a_name_resolving_inward_is_refused() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(307, headers={"Location": "http://rebind.example/admin"})

    recorder = Recorder(handler)
    async with mock_client(recorder, {"rebind.example": ["127.0.0.1"]}) as client:
        with pytest.raises(OutboundBlockedError):
            await fetch_json(client, "https://agent.example/", policy=STRICT)
    assert len(recorder.requests) == 1


async def test_redirects_between_public_hosts_are_followed_up_to_the_limit() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        hop = int(request.url.params.get("hop", "0"))
        return httpx.Response(302, headers={"Location": f"/next?hop={hop + 1}"})

    recorder = Recorder(handler)
    async with mock_client(recorder) as client:
        with pytest.raises(TooManyRedirectsError) as caught:
            await fetch_json(client, "https://agent.example/", policy=STRICT)
    assert caught.value.code == "too_many_redirects"
    assert len(recorder.requests) == STRICT.max_redirects + 1
    assert {seen.headers["Host"] for seen in recorder.requests} == {"agent.example"}


async def test_an_unresolvable_host_is_unreachable() -> None:
    async with mock_client(Recorder()) as client:
        with pytest.raises(UnreachableError) as caught:
            await fetch_json(client, "https://nowhere.example/", policy=STRICT)
    assert caught.value.code == "unreachable"


async def test_allow_private_admits_loopback_but_never_unspecified_or_multicast() -> None:
    recorder = Recorder()
    async with mock_client(recorder, policy=DEV) as client:
        assert (await client.get("http://127.0.0.1:8000/")).status_code == 200
        assert (await client.get("http://10.0.0.1/")).status_code == 200
        for url in ("http://0.0.0.0:8000/", "http://224.0.0.1/", "http://[::]/"):
            with pytest.raises(OutboundBlockedError):
                await client.get(url)
    assert len(recorder.requests) == 2


async def test_fetch_json_returns_the_parsed_body_and_asks_for_uncompressed_json() -> None:
    recorder = Recorder(lambda request: httpx.Response(200, json={"name": "scout"}))
    async with mock_client(recorder) as client:
        data, response = await fetch_json(
            client, "https://agent.example/card", policy=STRICT, headers={"X-Trace": "1"}
        )
    assert data == {"name": "scout"}
    assert response.status_code == 200
    [seen] = recorder.requests
    assert seen.headers["Accept-Encoding"] == "identity"
    assert seen.headers["X-Trace"] == "1"


@pytest.mark.parametrize(
    ("address", "public"),
    [
        (PUBLIC_IP, True),
        ("2606:4700::6810:84e5", True),
        ("::ffff:93.184.216.34", True),
        ("::ffff:10.0.0.1", False),
        ("198.18.0.1", False),
        ("192.0.2.1", False),
        ("240.0.0.1", False),
        ("255.255.255.255", False),
        ("2001:db8::1", False),
        ("ff0e::1", False),
    ],
)
def test_public_address_classification(address: str, public: bool) -> None:
    assert is_public_address(ipaddress.ip_address(address)) is public


async def test_system_resolver_returns_numeric_hosts_as_they_are() -> None:
    assert await system_resolver("127.0.0.1", 80) == ["127.0.0.1"]


def test_every_error_is_an_httpx_error_with_its_own_code() -> None:
    errors: list[type[FetchError]] = [
        OutboundBlockedError,
        SchemeNotAllowedError,
        UnreachableError,
        FetchTimeoutError,
        TooManyRedirectsError,
        ResponseTooLargeError,
        BadStatusError,
        InvalidJSONError,
    ]
    assert all(issubclass(error, httpx.HTTPError) for error in errors)
    assert len({error.code for error in errors}) == len(errors)
    assert issubclass(DeadlineExceededError, FetchTimeoutError)
    assert issubclass(OutboundBlockedError, httpx.RequestError)


# Real sockets on loopback, for what a mock transport cannot show: streaming and timing.


@pytest.fixture
async def serve() -> AsyncIterator[Callable[[Responder], Awaitable[str]]]:
    servers: list[asyncio.Server] = []
    connections: set[asyncio.Task[None]] = set()

    async def handle(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter, *, respond: Responder
    ) -> None:
        task = asyncio.current_task()
        assert task is not None
        connections.add(task)
        try:
            await reader.readuntil(b"\r\n\r\n")
            await respond(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass  # the client hanging up early is what several tests expect
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    async def start(respond: Responder) -> str:
        server = await asyncio.start_server(
            functools.partial(handle, respond=respond), "127.0.0.1", 0
        )
        servers.append(server)
        port = server.sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}"

    yield start

    for server in servers:
        server.close()
        await server.wait_closed()
    for task in connections:
        task.cancel()
    await asyncio.gather(*connections, return_exceptions=True)


def head(status: str, *headers: str) -> bytes:
    return "\r\n".join([f"HTTP/1.1 {status}", *headers, "Connection: close", "", ""]).encode()


def body_of(payload: bytes, status: str = "200 OK") -> Responder:
    async def respond(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(head(status, f"Content-Length: {len(payload)}") + payload)
        await writer.drain()

    return respond


async def test_a_local_server_is_reachable_when_private_addresses_are_allowed(
    serve: Callable[[Responder], Awaitable[str]],
) -> None:
    base = await serve(body_of(b'{"name": "local"}'))
    async with guarded_client(DEV) as client:
        data, response = await fetch_json(client, f"{base}/card", policy=DEV)
    assert data == {"name": "local"}
    assert response.headers["Content-Length"] == "17"


async def test_a_local_server_is_refused_by_the_default_policy(
    serve: Callable[[Responder], Awaitable[str]],
) -> None:
    base = await serve(body_of(b"{}"))
    async with guarded_client(STRICT) as client:
        with pytest.raises(OutboundBlockedError):
            await fetch_json(client, f"{base}/card", policy=STRICT)


async def test_a_declared_length_over_the_cap_is_refused_without_reading_the_body(
    serve: Callable[[Responder], Awaitable[str]],
) -> None:
    async def respond(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(head("200 OK", f"Content-Length: {50 * 1024 * 1024}") + b"{")
        await writer.drain()
        await reader.read()  # hold the connection until the client gives up on it

    base = await serve(respond)
    async with guarded_client(DEV) as client:
        with pytest.raises(ResponseTooLargeError) as caught:
            await fetch_json(client, f"{base}/card", policy=DEV)
    assert caught.value.code == "too_large"
    assert caught.value.limit == DEV.max_response_bytes


async def test_a_streamed_body_is_cut_off_once_it_passes_the_cap(
    serve: Callable[[Responder], Awaitable[str]],
) -> None:
    chunk = b"x" * 1024

    async def respond(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(head("200 OK", "Transfer-Encoding: chunked"))
        for _ in range(10_000):
            writer.write(b"400\r\n" + chunk + b"\r\n")
            await writer.drain()

    policy = OutboundPolicy(allow_private=True, max_response_bytes=8 * 1024)
    base = await serve(respond)
    async with guarded_client(policy) as client:
        with pytest.raises(ResponseTooLargeError):
            await fetch_json(client, f"{base}/card", policy=policy)


async def test_a_server_trickling_bytes_is_cut_off_by_the_total_deadline(
    serve: Callable[[Responder], Awaitable[str]],
) -> None:
    async def respond(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(head("200 OK", "Content-Length: 100"))
        for _ in range(100):
            writer.write(b" ")
            await writer.drain()
            await asyncio.sleep(0.2)

    policy = OutboundPolicy(allow_private=True, read_timeout=5.0, total_timeout=0.5)
    base = await serve(respond)
    started = time.monotonic()
    async with guarded_client(policy) as client:
        with pytest.raises(DeadlineExceededError) as caught:
            await fetch_json(client, f"{base}/card", policy=policy)
    assert caught.value.code == "timeout"
    assert time.monotonic() - started < 1.5


async def test_a_body_that_is_not_json_is_invalid_json(
    serve: Callable[[Responder], Awaitable[str]],
) -> None:
    base = await serve(body_of(b"<html>hello</html>"))
    async with guarded_client(DEV) as client:
        with pytest.raises(InvalidJSONError) as caught:
            await fetch_json(client, f"{base}/card", policy=DEV)
    assert caught.value.code == "invalid_json"


async def test_a_non_2xx_status_is_bad_status(
    serve: Callable[[Responder], Awaitable[str]],
) -> None:
    base = await serve(body_of(b'{"error": "gone"}', status="404 Not Found"))
    async with guarded_client(DEV) as client:
        with pytest.raises(BadStatusError) as caught:
            await fetch_json(client, f"{base}/card", policy=DEV)
    assert caught.value.code == "bad_status"
    assert caught.value.response.status_code == 404


async def test_a_closed_port_is_unreachable() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    async with guarded_client(DEV) as client:
        with pytest.raises(UnreachableError):
            await fetch_json(client, f"http://127.0.0.1:{port}/card", policy=DEV)
