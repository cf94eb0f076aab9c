"""This machine's interface addresses (via ifaddr), and what a listener binds to."""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass

import ifaddr

from engine.listener.errors import InterfaceNotFoundError

__all__ = ["InterfaceAddress", "interface_addresses", "resolve_interface", "url_host"]

_ANY = ("0.0.0.0", "::")


@dataclass(frozen=True)
class InterfaceAddress:
    """One IP address of one interface."""

    interface: str
    address: str
    scope_id: int = 0

    @property
    def ip(self) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
        return ipaddress.ip_address(self.address)

    @property
    def family(self) -> socket.AddressFamily:
        return socket.AF_INET6 if self.ip.version == 6 else socket.AF_INET

    @property
    def usable(self) -> bool:
        """Reachable by a URL: not IPv6 link-local (needs a zone), not unspecified."""
        ip = self.ip
        return not ip.is_unspecified and not (ip.version == 6 and ip.is_link_local)


def interface_addresses() -> list[InterfaceAddress]:
    """Every address of every interface, in the system's order."""
    found: list[InterfaceAddress] = []
    for adapter in ifaddr.get_adapters():
        name = adapter.name if isinstance(adapter.name, str) else adapter.name.decode()
        for ip in adapter.ips:
            if isinstance(ip.ip, tuple):
                found.append(InterfaceAddress(name, ip.ip[0], ip.ip[2]))
            else:
                found.append(InterfaceAddress(name, ip.ip))
    return found


def resolve_interface(spec: str | None) -> list[InterfaceAddress] | None:
    """The addresses to bind for ``spec`` (a name or an address); None means all.

    Raises :class:`InterfaceNotFoundError` if no interface has that name or address.
    """
    if spec is None or spec.strip() in _ANY:
        return None
    spec = spec.strip()
    addresses = interface_addresses()
    try:
        wanted = ipaddress.ip_address(spec.split("%")[0])
    except ValueError:
        named = [a for a in addresses if a.interface == spec and a.usable]
        if named:
            return named
        if any(a.interface == spec for a in addresses):
            raise InterfaceNotFoundError(
                f"network interface {spec!r} has no usable address"
            ) from None
    else:
        match = [a for a in addresses if a.ip == wanted]
        if match:
            return match[:1]
    names = sorted({a.interface for a in addresses})
    raise InterfaceNotFoundError(
        f"no network interface named or with address {spec!r} (interfaces: {', '.join(names)})"
    )


def url_host(address: str) -> str:
    """``address`` as the host part of a URL (IPv6 in brackets)."""
    return f"[{address}]" if ":" in address else address
