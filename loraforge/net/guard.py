"""The SSRF guard: refuse URLs whose host resolves to an address the service must not reach.

A user hands us URLs (dataset ZIPs, webhook targets) that the server then fetches; without this
check they could make it read cloud metadata (169.254.169.254) or internal services. Every A and
AAAA record of the host is checked, since an attacker controls which one a later connect would
pick; `resolve_safe` returns the checked addresses so callers can pin the connection to them and
close the DNS-rebinding window. `allow_private` (LORAFORGE_ALLOW_PRIVATE_URLS) lifts the address
checks for tests and local demos; the http/https rule and the ban on cloud metadata endpoints
always hold (no dataset or webhook ever lives there, and credentials do). Resolution goes
through a `Resolver` callable so tests can answer with addresses they control.
"""

from __future__ import annotations

import ipaddress
import socket
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlsplit

from loraforge.errors import UnsafeURLError

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
# (host, port) -> every address the host resolves to; raises UnsafeURLError if it resolves to none.
Resolver = Callable[[str, int], list[IPAddress]]

# Cloud instance-metadata and credential endpoints, refused even with LORAFORGE_ALLOW_PRIVATE_URLS.
METADATA_ADDRESSES = {
    ipaddress.ip_address("169.254.169.254"),  # AWS, GCP, Azure, OpenStack, DigitalOcean...
    ipaddress.ip_address("fd00:ec2::254"),  # AWS IMDS over IPv6
    ipaddress.ip_address("169.254.170.2"),  # AWS ECS task credentials
    ipaddress.ip_address("192.0.0.192"),  # Oracle Cloud
    ipaddress.ip_address("100.100.100.200"),  # Alibaba Cloud
}
# Refused by name before any lookup: a private resolver may map it anywhere.
METADATA_HOSTS = {"metadata.google.internal", "metadata.goog", "metadata"}
CGNAT = ipaddress.ip_network("100.64.0.0/10")
NAT64 = ipaddress.ip_network("64:ff9b::/96")
# The deprecated IPv4-compatible form (::a9fe:a9fe is 169.254.169.254); :: and ::1 are not IPv4.
IPV4_COMPATIBLE = ipaddress.ip_network("::/96")
METADATA_REASON = "a cloud metadata address"
RESOLVE_TIMEOUT_S = 5.0
LOOKUP_THREADS = 4
_lookups: ThreadPoolExecutor | None = None  # created on the first lookup, shared by the process
_lookups_lock = threading.Lock()


def refusal_reason(address: IPAddress) -> str | None:
    """Why `address` may not be fetched, or None if it is a public unicast address."""
    if address in METADATA_ADDRESSES:
        return METADATA_REASON
    if isinstance(address, ipaddress.IPv6Address):
        embedded = address.ipv4_mapped or address.sixtofour
        if embedded is None and address in NAT64:
            embedded = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
        if embedded is not None:
            inner = refusal_reason(embedded)
            return f"an IPv6 form of {embedded}, {inner}" if inner else None
        # Forms that only may reach their IPv4 address: refused for a bad one, else checked as IPv6.
        carried = (address.teredo or (None, None))[1]
        if carried is None and address in IPV4_COMPATIBLE and int(address) > 1:
            carried = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
        inner = refusal_reason(carried) if carried is not None else None
        if inner:
            return f"an IPv6 form of {carried}, {inner}"
    checks = [
        ("is_loopback", "a loopback address"),
        ("is_unspecified", "the unspecified address"),
        ("is_link_local", "a link-local address"),
        ("is_multicast", "a multicast address"),
        ("is_private", "a private-network address"),
        ("is_reserved", "a reserved address"),
    ]
    for attribute, reason in checks:
        if getattr(address, attribute):
            return reason
    if isinstance(address, ipaddress.IPv4Address) and address in CGNAT:
        return "a carrier-grade NAT (100.64.0.0/10) address"
    if not address.is_global:
        return "not a globally routable address"
    return None


def split_url(url: str) -> tuple[str, str, int]:
    """(scheme, host, port) of an http(s) URL, or UnsafeURLError saying what is wrong with it."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise UnsafeURLError(f"{url!r} is not a valid URL: {exc}") from None
    if parts.scheme not in ("http", "https"):
        raise UnsafeURLError(f"{url!r} must be an http:// or https:// URL")
    host = parts.hostname
    if not host:
        raise UnsafeURLError(f"{url!r} has no host name")
    return parts.scheme, host, port or (443 if parts.scheme == "https" else 80)


def system_resolve(host: str, port: int) -> list[IPAddress]:
    """Every address the system resolver gives for `host`, in its order, without duplicates.

    A lookup gets RESOLVE_TIMEOUT_S: getaddrinfo has no timeout of its own, and the DNS server of
    a user's domain is the user's. Lookups run on a small fixed pool, so hung ones cannot pile up
    threads; one that outlives its wait keeps a pool thread until the system resolver gives up.
    """
    global _lookups
    with _lookups_lock:
        if _lookups is None:
            _lookups = ThreadPoolExecutor(LOOKUP_THREADS, thread_name_prefix="loraforge-dns")
    future = _lookups.submit(socket.getaddrinfo, host, port, type=socket.SOCK_STREAM)
    try:
        infos = future.result(timeout=RESOLVE_TIMEOUT_S)
    except TimeoutError:
        future.cancel()
        raise UnsafeURLError(f"the host {host!r} did not resolve within {RESOLVE_TIMEOUT_S:g} s; check the URL") from None
    except (socket.gaierror, UnicodeError) as exc:
        raise UnsafeURLError(f"the host {host!r} cannot be resolved ({exc}); check the URL") from None
    addresses: list[IPAddress] = []
    for _family, _type, _proto, _name, sockaddr in infos:
        # strip an IPv6 zone id ("fe80::1%eth0") before parsing
        address = ipaddress.ip_address(str(sockaddr[0]).split("%", 1)[0])
        if address not in addresses:
            addresses.append(address)
    if not addresses:
        raise UnsafeURLError(f"the host {host!r} has no addresses; check the URL")
    return addresses


def _literal(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


def resolve_safe(
    url: str, allow_private: bool, resolver: Resolver = system_resolve
) -> tuple[str, int, list[IPAddress]]:
    """(host, port, addresses) of `url` once every address has passed the guard.

    Raises UnsafeURLError naming the host and the reason. Callers connect only to the returned
    addresses: resolving again could answer differently (DNS rebinding).
    """
    _scheme, host, port = split_url(url)
    if host.rstrip(".").lower() in METADATA_HOSTS:
        raise UnsafeURLError(f"refusing to fetch {url}: the host {host} is {METADATA_REASON}")
    literal = _literal(host)
    addresses = [literal] if literal is not None else resolver(host, port)
    for address in addresses:
        reason = refusal_reason(address)
        if reason and (not allow_private or METADATA_REASON in reason):
            shown = host if literal is not None else f"{host} (resolves to {address})"
            advice = "" if allow_private else " (set LORAFORGE_ALLOW_PRIVATE_URLS=true for local use)"
            raise UnsafeURLError(
                f"refusing to fetch {url}: the host {shown} is {reason}; only public "
                f"internet addresses are allowed{advice}"
            )
    return host, port, addresses


def check_url(url: str, allow_private: bool, resolver: Resolver = system_resolve) -> None:
    """Raise UnsafeURLError unless `url` is http(s) and every address of its host is public."""
    resolve_safe(url, allow_private, resolver)
