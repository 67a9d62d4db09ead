"""An append-only line log: every line reaches the OS before `write` returns.

No user-space buffer: each line is one `os.write` on an O_APPEND descriptor,
so a SIGKILL of the proxy can at most cut the line being written, and the
lines of a connection are on disk before the proxy lets go of the messages
they describe. Size-based rotation keeps `path.1` ... `path.N` (newest first).
Errors are OSError, for the caller to turn into a loud stop.

Batches: between `hold()` and `release()` lines are collected and then
written with one `os.write`. The lean launcher's fast path holds while it
processes one read and releases before it forwards any frame of that read,
so the promise above still holds for every forwarded message.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["LogFile"]


class LogFile:
    def __init__(self, path: str | Path, max_bytes: int = 0, keep: int = 5) -> None:
        if max_bytes < 0:
            raise ValueError(f"maximum log size must be 0 (no rotation) or more, not {max_bytes}")
        if keep < 1:
            raise ValueError(f"number of rotated logs to keep must be 1 or more, not {keep}")
        self.path = Path(path)
        self.max_bytes = max_bytes
        self.keep = keep
        self._fd = -1
        self._size = 0
        self._held: list[bytes] | None = None
        self._open()

    def _open(self) -> None:
        # 0600: the log holds URLs, headers and payloads of every request (redaction
        # hides credentials it recognises, not all of them).
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            os.fchmod(self._fd, 0o600)  # a log left by an older version may be 0644
        except PermissionError:
            pass  # someone else's file, opened for appending: theirs to protect
        self._size = os.fstat(self._fd).st_size

    def write(self, line: str) -> None:
        # A lone surrogate (a header mitmproxy decoded with surrogateescape)
        # becomes a \uXXXX escape, which is still valid JSON.
        data = line.encode("utf-8", "backslashreplace")
        if self._held is not None:
            self._held.append(data)
            return
        self._write(data)

    def hold(self) -> None:
        """Collect lines until `release` (no-op if already holding)."""
        if self._held is None:
            self._held = []

    def release(self) -> None:
        """Write what was held, one system call for all of it, and stop holding."""
        held, self._held = self._held, None
        if held:
            self._write(b"".join(held))

    def sync(self) -> None:
        """Write what is held now and keep holding (a no-op when not holding)."""
        if self._held:
            held, self._held = self._held, []
            self._write(b"".join(held))

    def _write(self, data: bytes) -> None:
        if self.max_bytes and self._size and self._size + len(data) > self.max_bytes:
            self.rotate()
        view = memoryview(data)
        while view:
            n = os.write(self._fd, view)
            view = view[n:]
        self._size += len(data)

    def rotate(self) -> None:
        self.close()
        oldest = self._rotated(self.keep)
        if oldest.exists():
            oldest.unlink()
        for i in range(self.keep - 1, 0, -1):
            if self._rotated(i).exists():
                self._rotated(i).rename(self._rotated(i + 1))
        if self.path.exists():
            self.path.rename(self._rotated(1))
        self._open()

    def _rotated(self, i: int) -> Path:
        return self.path.with_name(f"{self.path.name}.{i}")

    def close(self) -> None:
        if self._fd >= 0:
            if self._held:
                self.release()
            self._held = None
            os.close(self._fd)
            self._fd = -1
