"""Small network facts shared by the proxy's diagnoses and `doctor`.

No mitmproxy here: resolving a name per address family, probing a TCP port
with a deadline, and naming the program that holds a listening port (from
/proc, where there is one; elsewhere the answer is simply unknown).
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass

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
    """'python3 (pid 123) on [::1]:5280' for a listening TCP port, from /proc; None if unknown."""
    inodes: dict[str, str] = {}
    for table, v6 in (("/proc/net/tcp", False), ("/proc/net/tcp6", True)):
        try:
            with open(table) as f:
                lines = f.read().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            parts = line.split()
            if len(parts) < 10 or parts[3] != "0A":  # 0A: LISTEN
                continue
            local_hex, port_hex = parts[1].rsplit(":", 1)
            if int(port_hex, 16) == port:
                inodes[parts[9]] = fmt_addr(_proc_addr(local_hex, v6), port)
    if not inodes:
        return None
    try:
        pids = [p for p in os.listdir("/proc") if p.isdigit()]
    except OSError:
        pids = []
    for pid in pids:
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
        except OSError:
            continue
        for fd in fds:
            try:
                link = os.readlink(f"/proc/{pid}/fd/{fd}")
            except OSError:
                continue
            if link.startswith("socket:[") and link[8:-1] in inodes:
                try:
                    with open(f"/proc/{pid}/comm") as f:
                        name = f.read().strip()
                except OSError:
                    name = "?"
                return f"{name} (pid {pid}) on {inodes[link[8:-1]]}"
    return "a process on " + ", ".join(sorted(set(inodes.values())))


def _proc_addr(hexaddr: str, v6: bool) -> str:
    raw = bytes.fromhex(hexaddr)
    # /proc/net/tcp* prints each 32-bit word in host (little-endian here) order.
    words = b"".join(raw[i:i + 4][::-1] for i in range(0, len(raw), 4))
    return socket.inet_ntop(socket.AF_INET6 if v6 else socket.AF_INET, words)
