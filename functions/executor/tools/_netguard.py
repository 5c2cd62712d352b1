"""The SSRF guard of ``http.get``: only http(s), only global addresses, and the connection pinned to them.

A URL's host is resolved once (``socket.getaddrinfo``, so numeric forms such as ``2130706434`` or ``0x7f.1``
resolve as the C library would); every address must be global, and the request then connects to the checked
address while sending the original ``Host`` header and TLS server name, so a second DNS answer cannot move it.
Hosts named in ``STEPGRAPH_HTTP_ALLOW_HOSTS`` (``host`` or ``host:port``) skip the global check (local development).
"""

from __future__ import annotations

import ipaddress
import socket
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import httpx

from functions.errors import BlockedAddress, UnsupportedScheme
from functions.executor.tools._http_errors import HostNotFound, HttpTimeout, InvalidUrl

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

SCHEMES = ("http", "https")
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
# Refused on every Python version (the stdlib's tables change between releases: 3.13 made 2002::/16 private).
_NOT_PUBLIC_V6 = (
    (ipaddress.ip_network("2002::/16"), "6to4"),
    (ipaddress.ip_network("2001::/32"), "Teredo"),
    (ipaddress.ip_network("64:ff9b:1::/48"), "local-use NAT64"),
    (ipaddress.ip_network("100::/64"), "discard-only"),
    (ipaddress.ip_network("3fff::/20"), "documentation"),
)


def _kind(ip: IPAddress) -> str | None:
    """Why ``ip`` is not a public internet address, or ``None`` when it is."""
    if ip.is_unspecified:
        return "unspecified"
    if ip.is_loopback:
        return "loopback"
    if ip.is_link_local:
        return "link-local"
    if ip.is_multicast:
        return "multicast"
    if isinstance(ip, ipaddress.IPv6Address) and ip.is_site_local:
        return "site-local"
    if ip.is_private:
        return "private"
    if ip.is_reserved:
        return "reserved"
    if not ip.is_global:
        return "not globally routable"
    return None


def address_problem(ip: IPAddress | str) -> str | None:
    """The reason an address must not be fetched (e.g. ``"loopback"``), or ``None`` for a global address.

    IPv6 forms that carry an IPv4 address name it when it is not global (6to4, Teredo, NAT64); IPv4-mapped and
    IPv4-compatible addresses, and 6to4 and Teredo relays whatever they carry, are refused outright: a resolver
    has no business returning them for a public web server.
    """
    if isinstance(ip, str):
        ip = ipaddress.ip_address(ip)
    if isinstance(ip, ipaddress.IPv6Address):
        ip = ip.__class__(ip.packed)  # drop any scope id (fe80::1%eth0)
        if ip.ipv4_mapped is not None:
            return f"IPv4-mapped IPv6 address of {ip.ipv4_mapped}"
        if int(ip) >> 32 == 0 and int(ip) > 1:  # ::a.b.c.d, the deprecated IPv4-compatible form
            return f"IPv4-compatible IPv6 address of {ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)}"
        embedded: list[ipaddress.IPv4Address] = []
        if ip.sixtofour is not None:
            embedded.append(ip.sixtofour)
        if ip.teredo is not None:
            embedded.extend(ip.teredo)
        if ip in _NAT64:
            embedded.append(ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF))
        for inner in embedded:
            problem = _kind(inner)
            if problem:
                return f"IPv6 address embedding {problem} {inner}"
        for network, name in _NOT_PUBLIC_V6:
            if ip in network:
                return f"{name} address {ip}"
    problem = _kind(ip)
    return f"{problem} address {ip}" if problem else None


def parse_allow_hosts(entries: Iterable[str]) -> list[tuple[str, int | None]]:
    """``["localhost", "127.0.0.1:8080", "[::1]:9000"]`` -> ``[(host, port or None), ...]``, hosts lowercased."""
    allowed: list[tuple[str, int | None]] = []
    for raw in entries:
        entry = raw.strip().lower()
        if not entry:
            continue
        host, port = entry, None
        if entry.startswith("["):
            host, _, rest = entry[1:].partition("]")
            port = int(rest[1:]) if rest.startswith(":") and rest[1:].isdigit() else None
        elif entry.count(":") == 1:
            name, _, digits = entry.partition(":")
            if digits.isdigit():
                host, port = name, int(digits)
        allowed.append((host.rstrip("."), port))
    return allowed


@dataclass(frozen=True)
class Target:
    """A checked destination: connect to ``ip`` for ``host:port``."""

    host: str
    port: int
    ip: str
    allowed_by_list: bool


class AddressGuard:
    """Checks URLs and picks the address to connect to; ``resolver`` is injectable for tests."""

    def __init__(
        self,
        allow_hosts: Iterable[str] = (),
        resolver: Callable[..., list[tuple[Any, Any, Any, Any, Any]]] = socket.getaddrinfo,
        deadline: float | None = None,
    ) -> None:
        self.allow = parse_allow_hosts(allow_hosts)
        self.resolver = resolver
        self.deadline = deadline  # time.monotonic() by which resolution must be done

    def _lookup(self, host: str, port: int) -> list[tuple[Any, Any, Any, Any, Any]]:
        """The resolver's answer, within the deadline: getaddrinfo has no timeout of its own."""
        if self.deadline is None:
            return self.resolver(host, port, type=socket.SOCK_STREAM)
        box: dict[str, Any] = {}

        def work() -> None:
            try:
                box["infos"] = self.resolver(host, port, type=socket.SOCK_STREAM)
            except BaseException as exc:  # handed to the caller's thread below
                box["error"] = exc

        worker = threading.Thread(target=work, name=f"resolve-{host}", daemon=True)
        worker.start()
        worker.join(max(0.0, self.deadline - time.monotonic()))
        if worker.is_alive():
            raise HttpTimeout(f"resolving {host!r} took longer than the time limit")
        if "error" in box:
            raise box["error"]
        infos: list[tuple[Any, Any, Any, Any, Any]] = box["infos"]
        return infos

    def is_allow_listed(self, host: str, port: int) -> bool:
        host = host.lower().rstrip(".")
        return any(h == host and (p is None or p == port) for h, p in self.allow)

    def resolve(self, host: str, port: int) -> list[str]:
        """Every address ``host`` resolves to, in resolver order, without duplicates."""
        try:
            infos = self._lookup(host, port)
        except (socket.gaierror, UnicodeError, ValueError) as exc:
            raise HostNotFound(f"cannot resolve host {host!r}: {exc}") from None
        addresses: list[str] = []
        for family, _, _, _, sockaddr in infos:
            if family not in (socket.AF_INET, socket.AF_INET6):
                continue
            address = str(sockaddr[0]).split("%", 1)[0]
            if address not in addresses:
                addresses.append(address)
        if not addresses:
            raise HostNotFound(f"host {host!r} has no IPv4 or IPv6 address")
        return addresses

    def check(self, url: httpx.URL | str) -> Target:
        """The destination of ``url`` if it may be fetched; else ``UnsupportedScheme`` / ``BlockedAddress``."""
        url = httpx.URL(url) if isinstance(url, str) else url
        if url.scheme not in SCHEMES:
            raise UnsupportedScheme(f"scheme {url.scheme or '(none)'!r} is not allowed: only http and https")
        host = url.raw_host.decode("ascii", "replace")
        if not host:
            raise InvalidUrl(f"URL {str(url)!r} has no host")
        port = url.port or (443 if url.scheme == "https" else 80)
        if not 0 < port < 65536:
            raise InvalidUrl(f"URL {str(url)!r} has port {port}, outside 1-65535")
        allow_listed = self.is_allow_listed(host, port)
        addresses = self.resolve(host, port)
        if not allow_listed:
            for address in addresses:
                problem = address_problem(address)
                if problem:
                    shown = host if host == address else f"{host} (resolves to {address})"
                    raise BlockedAddress(
                        f"refused {shown}: {problem} is not a public internet address; "
                        "STEPGRAPH_HTTP_ALLOW_HOSTS can allow a host for local development"
                    )
        return Target(host=host, port=port, ip=addresses[0], allowed_by_list=allow_listed)


class PinnedTransport(httpx.BaseTransport):
    """Checks every request's URL with the guard and connects to the checked address, keeping Host and SNI."""

    def __init__(self, guard: AddressGuard, inner: httpx.BaseTransport | None = None) -> None:
        self.guard = guard
        self.inner = inner if inner is not None else httpx.HTTPTransport(retries=0)
        self.targets: list[Target] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        target = self.guard.check(request.url)
        self.targets.append(target)
        # The Host header was set from the original URL when the request was built; keep it.
        request.headers.setdefault("Host", request.url.netloc.decode("ascii"))
        if request.url.scheme == "https":
            request.extensions = {**request.extensions, "sni_hostname": target.host}
        request.url = request.url.copy_with(host=target.ip)
        return self.inner.handle_request(request)

    def close(self) -> None:
        self.inner.close()
