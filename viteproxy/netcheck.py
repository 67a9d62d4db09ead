"""Small network facts shared by the proxy's diagnoses and `doctor`.

No mitmproxy here: resolving a name per address family, probing a TCP port
with a deadline, one WebSocket handshake written byte for byte (doctor's
probe), and naming the program that holds a listening port (psutil, on every
platform it supports; when the owner is hidden, the answer says so).
"""

from __future__ import annotations

import os
import socket
import ssl
from dataclasses import dataclass

import psutil

__all__ = [
    "Resolved", "WsProbe", "fmt_addr", "other_loopback", "port_holder", "resolve", "tcp_probe",
    "unprivileged_port_start", "ws_probe",
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
        return f"{_process_name(c.pid)} (pid {c.pid}) on {fmt_addr(c.laddr.ip, port)}"
    where = ", ".join(sorted({fmt_addr(c.laddr.ip, port) for c in listening}))
    return f"a process on {where} (its owner is not visible to this user)"


def port_held_by_proxy(port: int) -> bool:
    """Whether the program listening on `port` is a viteproxy: mitmdump/mitmweb (the `-s`
    entry), the `viteproxy` command, or `python -m viteproxy`. True when its owner is not
    visible (the listener is then judged by what it answers, not by its name)."""
    try:
        conns = psutil.net_connections(kind="tcp")
    except (psutil.AccessDenied, OSError):
        return True
    pids = {c.pid for c in conns if c.status == psutil.CONN_LISTEN and c.laddr and c.laddr.port == port}
    if None in pids or not pids:
        return True
    for pid in pids:
        try:
            argv = psutil.Process(pid).cmdline()
        except psutil.AccessDenied:
            return True
        except psutil.NoSuchProcess:
            continue
        for arg in argv:
            base = arg.replace("\\", "/").rsplit("/", 1)[-1].lower()
            if base.startswith("mitm") or "viteproxy" in base:
                return True
    return False


def _process_name(pid: int) -> str:
    """The program's name; 'viteproxy (python3)' for a viteproxy whose process is named
    after its interpreter (`python -m viteproxy`, the launcher, a pipx console script)."""
    try:
        proc = psutil.Process(pid)
        name = proc.name()
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return "?"
    if "viteproxy" in name.lower() or "mitm" in name.lower():
        return name
    try:
        argv = proc.cmdline()
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return name
    if any("viteproxy" in a.rsplit("/", 1)[-1].lower() for a in argv[1:3]):
        return f"viteproxy ({name})"
    return name


@dataclass
class WsProbe:
    status: int | None  # None: closed without a response
    headers: dict[str, str]
    body: str = ""
    error: str = ""
    close_code: int | None = None  # a close frame the backend sent right after the 101
    close_reason: str = ""


def ws_probe(host: str, port: int, tls: bool, path: str, headers: dict[str, str], timeout: float, *,
             secure: bool = True, wait_close: float = 0.0) -> WsProbe:
    """One WebSocket handshake on a raw socket, exactly as written (Host and Origin included).

    With `wait_close`, waits that long after a 101 for a close frame the backend
    sends at once (a protocol it does not speak), then closes politely.
    Raises OSError (ssl.SSLError, TimeoutError) for a connection that fails.
    """
    raw = socket.create_connection((host, port), timeout=timeout)
    sock: socket.socket = raw
    try:
        if tls:
            ctx = ssl.create_default_context()
            if not secure:
                ctx.check_hostname = False
                ctx.verify_mode = ssl.CERT_NONE
            sock = ctx.wrap_socket(raw, server_hostname=host)
        lines = [f"GET {path} HTTP/1.1", *(f"{k}: {v}" for k, v in headers.items()), "", ""]
        sock.sendall("\r\n".join(lines).encode("latin-1"))
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = sock.recv(4096)
            if not chunk:
                return WsProbe(None, {}, error="the backend closed the connection without a response")
            data += chunk
        head, rest = data.split(b"\r\n\r\n", 1)
        status_line, *header_lines = head.decode("latin-1").split("\r\n")
        parts = status_line.split(" ", 2)
        status = int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else None
        got = {}
        for line in header_lines:
            name, _, value = line.partition(":")
            got[name.strip().lower()] = value.strip()
        if status != 101:
            sock.settimeout(min(timeout, 1.0))
            try:
                while len(rest) < 2000:
                    chunk = sock.recv(4096)
                    if not chunk:
                        break
                    rest += chunk
                    length = got.get("content-length", "")
                    if length.isdigit() and len(rest) >= int(length):
                        break
            except OSError:
                pass
            return WsProbe(status, got, rest.decode("utf-8", "replace"))
        probe = WsProbe(101, got)
        if wait_close > 0:
            sock.settimeout(wait_close)
            try:
                while len(rest) < 2 or len(rest) < 2 + (rest[1] & 0x7F):
                    chunk = sock.recv(4096)
                    if not chunk:
                        break
                    rest += chunk
            except OSError:
                pass
            if len(rest) >= 4 and rest[0] & 0x0F == 0x8:  # a close frame, unmasked from the server
                size = rest[1] & 0x7F
                payload = rest[2:2 + size]
                probe.close_code = int.from_bytes(payload[:2], "big")
                probe.close_reason = payload[2:].decode("utf-8", "replace")
        _send_close(sock)
        return probe
    finally:
        sock.close()


def _send_close(sock: socket.socket) -> None:
    mask = os.urandom(4)
    payload = bytes(b ^ mask[i % 4] for i, b in enumerate((1000).to_bytes(2, "big")))
    try:
        sock.sendall(b"\x88\x82" + mask + payload)
    except OSError:
        pass
