"""Egress policy for outbound HTTP: which addresses a connection may reach, checked after DNS.

The check sits in the connection itself (an httpcore network backend): the name is resolved
once, every address it resolves to is checked, and the connection goes to a checked address, so
a name that resolves differently a moment later (DNS rebinding) cannot slip past it. Redirects
open new connections and are checked the same way. With an HTTP(S) proxy from the environment the
connection checked is the one to the proxy.
"""

from __future__ import annotations

import asyncio
import dataclasses
import ipaddress
import socket
from collections.abc import Iterable, Mapping

import httpcore  # pants: no-infer-dep (httpx's own transport library; comes with httpx)
import httpx

IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

# Link-local (where clouds serve instance metadata and credentials) and the metadata addresses
# outside it: AWS over IPv6, Alibaba Cloud. Loopback and private ranges stay reachable (tests,
# sidecars and in-cluster services use them); an operator denies more by configuration.
DEFAULT_DENIED = (
    "169.254.0.0/16",
    "fe80::/10",
    "fd00:ec2::254/128",
    "100.100.100.200/32",
)


class EgressRefused(Exception):
    """The policy refuses an address the host resolved to."""

    def __init__(self, host: str, address: str) -> None:
        super().__init__(f"egress policy refuses {host} ({address})")
        self.host = host
        self.address = address


@dataclasses.dataclass(frozen=True)
class EgressPolicy:
    """Refuses an address in `denied` unless it is also in `allowed`."""

    denied: tuple[IpNetwork, ...]
    allowed: tuple[IpNetwork, ...] = ()

    @classmethod
    def parse(cls, deny: str = "", allow: str = "") -> EgressPolicy:
        """The default denials plus `deny`, minus `allow` (comma-separated CIDRs or addresses);
        raises ValueError naming a malformed entry."""
        return cls(
            denied=_networks([*DEFAULT_DENIED, *_entries(deny)]),
            allowed=_networks(_entries(allow)),
        )

    @classmethod
    def from_env(cls, environ: Mapping[str, str], deny_var: str, allow_var: str) -> EgressPolicy:
        return cls.parse(environ.get(deny_var, ""), environ.get(allow_var, ""))

    def refuses(self, address: str) -> bool:
        ip = ipaddress.ip_address(address.split("%", 1)[0])  # Drop an IPv6 zone (fe80::1%eth0).
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped  # ::ffff:169.254.169.254 is 169.254.169.254.
        return any(ip in net for net in self.denied) and not any(ip in net for net in self.allowed)


def guarded_transport(policy: EgressPolicy) -> httpx.AsyncHTTPTransport:
    """An httpx transport whose every connection passes the policy."""
    transport = httpx.AsyncHTTPTransport()
    # httpx does not take a network backend; its pool hands this one to each new connection.
    pool = transport._pool
    pool._network_backend = _GuardedBackend(policy, pool._network_backend)
    return transport


class _GuardedBackend(httpcore.AsyncNetworkBackend):
    def __init__(self, policy: EgressPolicy, inner: httpcore.AsyncNetworkBackend) -> None:
        self._policy = policy
        self._inner = inner

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        addresses = await _resolve(host, port, timeout)
        for address in addresses:
            if self._policy.refuses(address):
                raise EgressRefused(host, address)
        failure: Exception = httpcore.ConnectError(f"{host} resolved to no address")
        for address in addresses:
            try:
                return await self._inner.connect_tcp(
                    address,
                    port,
                    timeout=timeout,
                    local_address=local_address,
                    socket_options=socket_options,
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as error:
                failure = error
        raise failure

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        return await self._inner.connect_unix_socket(path, timeout, socket_options)

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


async def _resolve(host: str, port: int, timeout: float | None) -> list[str]:
    loop = asyncio.get_running_loop()
    try:
        infos = await asyncio.wait_for(
            loop.getaddrinfo(host, port, type=socket.SOCK_STREAM), timeout
        )
    except TimeoutError:
        raise httpcore.ConnectTimeout(f"resolving {host} timed out") from None
    except OSError as error:
        raise httpcore.ConnectError(f"cannot resolve {host}: {error}") from None
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def _entries(text: str) -> list[str]:
    return [entry.strip() for entry in text.split(",") if entry.strip()]


def _networks(entries: Iterable[str]) -> tuple[IpNetwork, ...]:
    networks = []
    for entry in entries:
        try:
            networks.append(ipaddress.ip_network(entry, strict=False))
        except ValueError:
            raise ValueError(f"not an IP network or address: {entry!r}") from None
    return tuple(networks)
