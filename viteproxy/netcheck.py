"""Small network facts shared by the proxy's diagnoses and `doctor`.

No mitmproxy here: resolving a name per address family, probing a TCP port
with a deadline, and naming the program that holds a listening port (psutil,
on every platform it supports; when the owner is hidden, the answer says so).
"""

from __future__ import annotations

import socket
from dataclasses import dataclass

import psutil

__all__ = [
    "Resolved", "fmt_addr", "other_loopback", "port_holder", "resolve", "tcp_probe",
    "unprivileged_port_start",
]


@dataclass(frozen=True)
class Resolved:
    """The addresses a host resolves to, in resolver order, and the error per family."""

    addresses: tuple[tuple[int, str], ...]  # (family, address)
    errors: tuple[tuple[int, str], ...] = ()

    @property
    def first(self) -> tuple[int, str] | None:
        return self.addresses[0] if self.addresses else None


def fmt_addr(address: str, port: int) -> str:
    return f"[{address}]:{port}" if ":" in address else f"{address}:{port}"


def resolve(host: str, port: int) -> Resolved:
    """getaddrinfo in the resolver's order, and for each family on its own (to name failures)."""
    found: list[tuple[int, str]] = []
    errors: list[tuple[int, str]] = []
    try:
        for family, _, _, _, sockaddr in socket.getaddrinfo(host, port, type=socket.SOCK_STREAM):
            item = (int(family), str(sockaddr[0]))
            if item not in found:
                found.append(item)
    except socket.gaierror as e:
        errors.append((0, str(e)))
    for family in (socket.AF_INET, socket.AF_INET6):
        if not any(f == family for f, _ in found):
            try:
                socket.getaddrinfo(host, port, family=family, type=socket.SOCK_STREAM)
            except socket.gaierror as e:
                errors.append((int(family), str(e)))
    return Resolved(tuple(found), tuple(errors))


def tcp_probe(address: str, port: int, timeout: float = 2.0) -> str | None:
    """None when a TCP connection to address:port completes, else why not."""
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.settimeout(timeout)
        try:
            s.connect((address, port))
        except TimeoutError:
            return "timeout"
        except OSError as e:
            return "refused" if isinstance(e, ConnectionRefusedError) else str(e)
    return None


def other_loopback(address: str) -> str:
    return "127.0.0.1" if ":" in address else "::1"


def unprivileged_port_start() -> int:
    try:
        with open("/proc/sys/net/ipv4/ip_unprivileged_port_start") as f:
            return int(f.read().strip())
    except (OSError, ValueError):
        return 1024


def port_holder(port: int) -> str | None:
    """'python3 (pid 123) on [::1]:5280' for a listening TCP port; None if nothing listens.

    psutil names the owner where the OS lets it (Linux: own processes, or all
    as root; macOS needs root for other users' sockets). When the socket is
    visible but its owner is not, the answer says so instead of guessing.
    """
    try:
        conns = psutil.net_connections(kind="tcp")
    except (psutil.AccessDenied, OSError):
        return None
    listening = [c for c in conns if c.status == psutil.CONN_LISTEN and c.laddr and c.laddr.port == port]
    if not listening:
        return None
    for c in listening:
        if c.pid is None:
            continue
        try:
            name = psutil.Process(c.pid).name()
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            name = "?"
        return f"{name} (pid {c.pid}) on {fmt_addr(c.laddr.ip, port)}"
    where = ", ".join(sorted({fmt_addr(c.laddr.ip, port) for c in listening}))
    return f"a process on {where} (its owner is not visible to this user)"
