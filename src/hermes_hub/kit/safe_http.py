"""Outbound HTTP to user-supplied URLs without server-side request forgery.

Agents register their own endpoints, so every URL the hub calls is attacker-controlled. The
guarded transport resolves each hop's host once, refuses it unless every address is public,
and connects to that pinned address, so a DNS answer that changes between check and connect
(DNS rebinding) cannot steer the request inward. httpx calls the transport once per redirect
hop, so redirects are checked the same way.

Every error raised here is an ``httpx.HTTPError`` and a ``FetchError`` whose ``code`` the hub
maps to a problem+json code. Messages never name the addresses a hostname resolved to: that
would turn the hub into a probe of its own internal DNS. The address is on ``.address`` for logs.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import ipaddress
import json
import socket
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, NamedTuple

import httpx

from hermes_hub.errors import HubError

Resolver = Callable[[str, int], Awaitable[list[str]]]
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

ALLOWED_SCHEMES = frozenset({"http", "https"})
DEFAULT_PORTS = {"http": 80, "https": 443}

# IPv6 prefixes that carry an IPv4 address in their low 32 bits and reach it through a
# translator. Python's ``is_global`` calls these prefixes global whatever IPv4 they embed.
_NAT64_PREFIXES = (
    ipaddress.IPv6Network("64:ff9b::/96"),
    ipaddress.IPv6Network("64:ff9b:1::/48"),
)


@dataclass(frozen=True)
class OutboundPolicy:
    """Limits for one outbound exchange.

    ``allow_private`` lets local development and tests reach loopback and private networks;
    the hub sets it from ``HERMES_ALLOW_PRIVATE_ENDPOINTS``. ``total_timeout`` bounds the
    whole exchange, body included, because per-read timeouts alone never fire on a server
    that trickles one byte just inside each one.
    """

    allow_private: bool = False
    connect_timeout: float = 5.0
    read_timeout: float = 10.0
    total_timeout: float = 15.0
    max_response_bytes: int = 1024 * 1024
    max_redirects: int = 3

    def httpx_timeout(self) -> httpx.Timeout:
        return httpx.Timeout(
            connect=self.connect_timeout,
            read=self.read_timeout,
            write=self.read_timeout,
            pool=self.connect_timeout,
        )


class FetchError(httpx.HTTPError):
    """Base of every refusal and failure raised here; ``code`` is stable and machine-readable."""

    code: ClassVar[str] = "fetch_failed"


class OutboundBlockedError(FetchError, httpx.RequestError):
    """The destination is not a public address (or not an address the policy allows)."""

    code: ClassVar[str] = "blocked_address"

    def __init__(
        self, message: str, *, request: httpx.Request | None = None, address: str | None = None
    ) -> None:
        super().__init__(message, request=request)
        self.address = address


class SchemeNotAllowedError(OutboundBlockedError):
    code: ClassVar[str] = "blocked_scheme"


class UnreachableError(FetchError, httpx.ConnectError):
    """The host did not resolve, or no connection could be made or completed."""

    code: ClassVar[str] = "unreachable"


class FetchTimeoutError(FetchError, httpx.TimeoutException):
    """A connect, read or write phase took longer than the policy allows."""

    code: ClassVar[str] = "timeout"


class DeadlineExceededError(FetchTimeoutError):
    """The whole exchange took longer than ``total_timeout``."""


class TooManyRedirectsError(FetchError, httpx.TooManyRedirects):
    code: ClassVar[str] = "too_many_redirects"


class ResponseTooLargeError(FetchError):
    code: ClassVar[str] = "too_large"

    def __init__(self, message: str, *, limit: int) -> None:
        super().__init__(message)
        self.limit = limit


class BadStatusError(FetchError, httpx.HTTPStatusError):
    """The final response was not 2xx; ``.response.status_code`` says what it was."""

    code: ClassVar[str] = "bad_status"


class InvalidJSONError(FetchError):
    code: ClassVar[str] = "invalid_json"


def _embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if any(address in prefix for prefix in _NAT64_PREFIXES):
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def is_never_a_destination(address: IPAddress) -> bool:
    """Addresses no policy may connect to: they mean "this host" or "many hosts", not a peer."""
    if isinstance(address, ipaddress.IPv6Address):
        embedded = _embedded_ipv4(address)
        if embedded is not None:
            return is_never_a_destination(embedded)
    broadcast = ipaddress.IPv4Address("255.255.255.255")
    return address.is_unspecified or address.is_multicast or address == broadcast


def is_public_address(address: IPAddress) -> bool:
    """True only for global unicast addresses, judging an embedded IPv4 by itself."""
    if isinstance(address, ipaddress.IPv6Address):
        embedded = _embedded_ipv4(address)
        if embedded is not None:
            return is_public_address(embedded)
    return address.is_global and not address.is_multicast


def address_allowed(address: IPAddress, *, allow_private: bool) -> bool:
    if is_never_a_destination(address):
        return False
    return allow_private or is_public_address(address)


async def system_resolver(host: str, port: int) -> list[str]:
    """Every address the system resolver gives for ``host``, in its preference order."""
    infos = await asyncio.get_running_loop().getaddrinfo(
        host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP
    )
    addresses: list[str] = []
    for *_, sockaddr in infos:
        address = str(sockaddr[0])
        if address not in addresses:
            addresses.append(address)
    return addresses


@functools.lru_cache(maxsize=4096)
def _parse_ip(text: str) -> IPAddress | None:
    # Cached: the gateway parses the same few hosts on every forwarded call.
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


class GuardedTransport(httpx.AsyncBaseTransport):
    """Checks and pins the destination of every request before the inner transport sees it.

    The default inner transport keeps no idle connections: httpcore pools connections by
    scheme, IP and port only, so with pinned URLs a TLS connection verified for one hostname
    could otherwise carry a request for another hostname that shares its IP.
    """

    def __init__(
        self,
        policy: OutboundPolicy,
        *,
        inner: httpx.AsyncBaseTransport | None = None,
        resolver: Resolver | None = None,
    ) -> None:
        self._policy = policy
        self._inner = inner or httpx.AsyncHTTPTransport(
            limits=httpx.Limits(max_keepalive_connections=0)
        )
        self._resolve = resolver or system_resolver

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        url = request.url
        if url.scheme not in ALLOWED_SCHEMES:
            raise SchemeNotAllowedError(
                f"refusing to fetch {url.scheme}:// URLs: only http and https are allowed",
                request=request,
            )
        host = url.raw_host.decode("ascii")
        if not host:
            raise OutboundBlockedError("refusing to fetch a URL without a host", request=request)

        addresses = await self._allowed_addresses(
            host, url.port or DEFAULT_PORTS[url.scheme], request
        )
        # A host may publish addresses this machine cannot route to (often IPv6); nothing
        # has been sent when a connect fails, so trying the next checked address is safe.
        *fallbacks, last = addresses
        for address in fallbacks:
            with contextlib.suppress(httpx.ConnectError):
                return await self._inner.handle_async_request(self._pinned(request, host, address))
        return await self._inner.handle_async_request(self._pinned(request, host, last))

    async def _allowed_addresses(
        self, host: str, port: int, request: httpx.Request
    ) -> list[IPAddress]:
        literal = _parse_ip(host)
        if literal is not None:
            if not address_allowed(literal, allow_private=self._policy.allow_private):
                raise OutboundBlockedError(
                    f"refusing to connect to {host}: not a public address",
                    request=request,
                    address=str(literal),
                )
            return [literal]

        try:
            resolved = await self._resolve(host, port)
        except OSError as exc:
            raise UnreachableError(f"could not resolve {host}", request=request) from exc
        addresses = [_parse_ip(text) for text in resolved]
        if not addresses:
            raise UnreachableError(f"could not resolve {host}", request=request)
        for address, text in zip(addresses, resolved, strict=True):
            # One bad address blocks the host: a connect could otherwise land on it.
            if address is None or not address_allowed(
                address, allow_private=self._policy.allow_private
            ):
                raise OutboundBlockedError(
                    f"refusing to connect to {host}: it resolves to a non-public address",
                    request=request,
                    address=text,
                )
        return [address for address in addresses if address is not None]

    @staticmethod
    def _pinned(request: httpx.Request, host: str, address: IPAddress) -> httpx.Request:
        extensions = dict(request.extensions)
        if request.url.scheme == "https" and _parse_ip(host) is None:
            # TLS must still verify the certificate against the name the user gave.
            extensions["sni_hostname"] = host
        # The Host header was set from the original URL and is carried over unchanged.
        return httpx.Request(
            request.method,
            request.url.copy_with(host=str(address)),
            headers=request.headers,
            stream=request.stream,
            extensions=extensions,
        )

    async def aclose(self) -> None:
        await self._inner.aclose()


def guarded_client(
    policy: OutboundPolicy,
    *,
    transport: httpx.AsyncBaseTransport | None = None,
    resolver: Resolver | None = None,
    **kwargs: Any,
) -> httpx.AsyncClient:
    """An AsyncClient whose every hop goes through ``GuardedTransport``.

    ``transport`` is the inner transport (tests pass ``httpx.MockTransport``). Environment
    proxies are ignored: a proxy would make the connection, so the pinned address would not
    be what is reached. The caller closes the client.
    """
    return httpx.AsyncClient(
        transport=GuardedTransport(policy, inner=transport, resolver=resolver),
        timeout=policy.httpx_timeout(),
        follow_redirects=True,
        max_redirects=policy.max_redirects,
        trust_env=False,
        **kwargs,
    )


@contextlib.asynccontextmanager
async def deadline(seconds: float, *, what: str = "the request") -> AsyncIterator[None]:
    """Bound a whole exchange; expiry raises ``DeadlineExceededError``."""
    scope = asyncio.timeout(seconds)
    try:
        async with scope:
            yield
    except TimeoutError as exc:
        if scope.expired():
            raise DeadlineExceededError(f"{what} took longer than {seconds:g} s") from exc
        raise


async def read_limited(response: httpx.Response, max_bytes: int) -> bytes:
    """Read a streamed response body, refusing it as soon as it is known to exceed ``max_bytes``.

    The count is of decoded bytes, so a compressed body cannot expand past the cap either.
    """
    declared = response.headers.get("Content-Length")
    if declared is not None and declared.isdigit() and int(declared) > max_bytes:
        raise _too_large(response, max_bytes)
    body = bytearray()
    async for chunk in response.aiter_bytes():
        body += chunk
        if len(body) > max_bytes:
            raise _too_large(response, max_bytes)
    return bytes(body)


def _too_large(response: httpx.Response, max_bytes: int) -> ResponseTooLargeError:
    return ResponseTooLargeError(
        f"response from {response.request.url} is larger than {max_bytes} bytes", limit=max_bytes
    )


class FetchedJSON(NamedTuple):
    data: Any
    response: httpx.Response


async def fetch_json(
    client: httpx.AsyncClient,
    url: str,
    *,
    policy: OutboundPolicy,
    headers: Mapping[str, str] | None = None,
) -> FetchedJSON:
    """GET ``url`` and parse its JSON body within the policy's size and time limits.

    Raises a ``FetchError`` subclass for every failure: blocked address or scheme, unresolvable
    or unreachable host, timeout or total deadline, too many redirects, non-2xx status, body
    over ``max_response_bytes`` or not JSON. The returned response's body is already consumed.
    """
    # Identity keeps the server's bytes what the cap measures; a compressed chunk could
    # otherwise expand a thousandfold in memory before the count sees it.
    request_headers = {"Accept": "application/json", "Accept-Encoding": "identity"}
    request_headers.update(headers or {})
    try:
        async with (
            deadline(policy.total_timeout, what=f"fetching {url}"),
            client.stream("GET", url, headers=request_headers) as response,
        ):
            if not response.is_success:
                raise BadStatusError(
                    f"{url} answered {response.status_code}",
                    request=response.request,
                    response=response,
                )
            body = await read_limited(response, policy.max_response_bytes)
    except FetchError:
        raise
    except httpx.TooManyRedirects as exc:
        raise TooManyRedirectsError(
            f"{url} redirected more than {policy.max_redirects} times", request=exc.request
        ) from exc
    except httpx.TimeoutException as exc:
        raise FetchTimeoutError(f"timed out fetching {url}", request=exc.request) from exc
    except httpx.TransportError as exc:
        raise UnreachableError(f"could not fetch {url}", request=exc.request) from exc

    try:
        data = json.loads(body)
    # Deep nesting fits easily in the size cap and exhausts the parser's recursion limit.
    except (ValueError, RecursionError) as exc:
        raise InvalidJSONError(f"{url} did not return valid JSON") from exc
    return FetchedJSON(data, response)


def check_endpoint_url(url: str, *, allow_private: bool) -> None:
    """Refuse, before any request is made, an endpoint URL whose host is an address (or
    ``localhost``) the guarded transport would refuse anyway: the owner hears it at once,
    with a 422. Names that resolve to private addresses are caught when fetched."""
    host = (httpx.URL(url).host or "").rstrip(".").lower()
    literal = _parse_ip(host)
    refused = (
        literal is not None and not address_allowed(literal, allow_private=allow_private)
    ) or (not allow_private and (host == "localhost" or host.endswith(".localhost")))
    if refused:
        raise HubError(
            f"endpoint_url must point at a public address, not {host}.",
            status=422,
            code="endpoint_not_allowed",
        )
