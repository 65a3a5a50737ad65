"""The address guard: a webhook may only call public addresses, unless told otherwise.

A URL's host is resolved, and every address it resolves to must be global (not loopback,
private, link-local such as the 169.254.169.254 metadata service, shared, reserved,
multicast or unspecified): one bad address refuses the URL, so a name cannot mix a public
address with an internal one. Deliveries then connect to the address that was checked
(see deliverer.py), so the name cannot resolve elsewhere between check and connection.
LEADS_WEBHOOK_ALLOW_PRIVATE=1 lets internal addresses through (tests, internal receivers).

>>> refused_reason(ipaddress.ip_address("10.1.2.3"))
'a private address'
>>> refused_reason(ipaddress.ip_address("::ffff:127.0.0.1"))
'a loopback address'
>>> refused_reason(ipaddress.ip_address("93.184.215.14")) is None
True
"""

from __future__ import annotations

import ipaddress
import os
import socket
from dataclasses import dataclass
from urllib.parse import urlsplit

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
ALLOW_PRIVATE_ENV = "LEADS_WEBHOOK_ALLOW_PRIVATE"
# Cloud metadata services that are not link-local (AWS's IPv6 one; the IPv4 ones are).
_METADATA = {ipaddress.ip_address("fd00:ec2::254")}


class AddressRefused(Exception):
    """The URL's host may not be called; the message says why."""


@dataclass(frozen=True)
class Destination:
    """Where to connect for a URL: its host and port, and the checked addresses (empty
    when internal addresses are allowed: then the URL is called as it is)."""

    host: str
    port: int
    addresses: tuple[str, ...]


def allow_private_from_env() -> bool:
    return os.environ.get(ALLOW_PRIVATE_ENV, "").strip().lower() in ("1", "true", "yes")


def refused_reason(address: IPAddress) -> str | None:
    """Why `address` may not be called, or None when it is a public address."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    checks = (
        (address.is_loopback, "a loopback address"),
        (address in _METADATA, "a metadata address"),
        (address.is_link_local, "a link-local address"),
        (address.is_multicast, "a multicast address"),
        (address.is_unspecified, "an unspecified address"),
        (address.is_private, "a private address"),
        (address.is_reserved, "a reserved address"),
        (not address.is_global, "not a public address"),
    )
    return next((reason for refused, reason in checks if refused), None)


def destination(url: str, *, allow_private: bool) -> Destination:
    """Resolve `url`'s host and check every address (blocking: call from a thread).
    Raises AddressRefused."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = parts.port or (443 if parts.scheme.lower() == "https" else 80)
    if allow_private:
        return Destination(host, port, ())
    try:
        literal: IPAddress | None = ipaddress.ip_address(host)
    except ValueError:
        literal = None
    if literal is not None:
        found = [literal]
    else:
        try:
            infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except (socket.gaierror, UnicodeError) as error:
            raise AddressRefused(f"the host {host!r} cannot be resolved ({error})") from None
        found = [ipaddress.ip_address(str(info[4][0]).split("%")[0]) for info in infos]
    for address in found:
        reason = refused_reason(address)
        if reason is not None:
            raise AddressRefused(
                f"the host {host!r} resolves to {address}, {reason} "
                f"(set {ALLOW_PRIVATE_ENV}=1 to allow internal receivers)"
            )
    return Destination(host, port, tuple(dict.fromkeys(str(a) for a in found)))
