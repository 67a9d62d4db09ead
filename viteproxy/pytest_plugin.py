"""pytest fixtures for recorded WebSocket sessions, loaded by pytest through the package's entry point.

- `ws_replay(recording, target, ignore=[...])` replays a recording against a
  live backend and fails the test with the diff when the backend answers
  differently; it returns the outcomes (one per connection).
- `ws_standin(recording)` starts a stand-in backend that serves the recording
  and returns it (`.url`, `.port`, `.served`); it is stopped after the test.

`recording` is a path (JSONL log with full payloads, `.mitm`, HAR) or a
`viteproxy.session.Recording`. This module imports only pytest at start-up:
every pytest run of a user who installed viteproxy loads it, so the replay
code (and python-websockets) is imported by the fixtures when first used.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Coroutine, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import pytest

if TYPE_CHECKING:
    from .replaynet import Outcome, StandIn
    from .session import Recording

__all__ = ["StandInServer", "ws_replay", "ws_standin"]

T = TypeVar("T")


def _recording(source: str | Path | Recording) -> Recording:
    from .session import Recording, SessionError, load

    if isinstance(source, Recording):
        return source
    try:
        return load(source)
    except SessionError as e:
        pytest.fail(f"viteproxy: cannot use the recording: {e}", pytrace=False)


def _run_in_thread(coro: Coroutine[Any, Any, T]) -> T:
    """asyncio.run in its own thread: works whether or not the test already runs an event loop."""
    result: list[T] = []
    error: list[BaseException] = []

    def target() -> None:
        try:
            result.append(asyncio.run(coro))
        except BaseException as e:  # re-raised in the test's thread
            error.append(e)

    t = threading.Thread(target=target, name="viteproxy-replay")
    t.start()
    t.join()
    if error:
        raise error[0]
    return result[0]


@pytest.fixture
def ws_replay() -> Callable[..., list[Outcome]]:
    """Replay a recording against a backend; the test fails naming the first differing message."""

    def check(recording: str | Path | Recording, target: str, *, ignore: Sequence[str] = (),
              compare: str | None = None, sync: str = "reply", speed: float = 1.0, timeout: float = 5.0,
              headers: Sequence[tuple[str, str]] = (), keep_headers: Sequence[str] = (),
              insecure: bool = False) -> list[Outcome]:
        from .replay import Matcher, render
        from .replaynet import replay, ws_url

        rec = _recording(recording)
        if not rec.connections:
            pytest.fail(f"viteproxy: {rec.source}: no upgraded WebSocket connection to replay", pytrace=False)
        try:
            matcher = Matcher.build(compare, ignore)
        except ValueError as e:
            pytest.fail(f"viteproxy: ignore: {e}", pytrace=False)
        try:
            ws_url(target, rec.connections[0])
        except ValueError as e:
            pytest.fail(f"viteproxy: {e}", pytrace=False)
        outcomes = _run_in_thread(replay(rec, target, sync=sync, speed=speed, timeout=timeout,
                                         matcher=matcher, headers=headers, keep_headers=keep_headers,
                                         insecure=insecure))
        problems = []
        for i, o in enumerate(outcomes, 1):
            if o.error:
                problems.append(f"connection {i} ({o.conn.url}): {o.error}\n")
            elif o.difference:
                problems.append(render(i, o.conn, o.difference))
        if problems:
            pytest.fail(f"the backend at {target} does not answer as {rec.source} recorded:\n"
                        + "".join(problems), pytrace=False)
        return outcomes

    return check


@dataclass
class StandInServer:
    """A running stand-in backend: connect to `url` + the recorded path."""

    standin: StandIn
    host: str

    @property
    def port(self) -> int:
        return self.standin.port

    @property
    def url(self) -> str:
        return f"ws://{self.host}:{self.port}"

    @property
    def served(self) -> int:
        """Connections served so far."""
        return self.standin.served


class _LoopThread:
    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True, name="viteproxy-standin")
        self.thread.start()

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(30)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


@pytest.fixture
def ws_standin() -> Iterator[Callable[..., StandInServer]]:
    """Start stand-in backends that serve recordings; all are stopped after the test."""
    loop: _LoopThread | None = None
    started: list[StandIn] = []

    def start(recording: str | Path | Recording, *, sync: str = "reply", speed: float = 1.0,
              host: str = "127.0.0.1", port: int = 0) -> StandInServer:
        nonlocal loop
        from .replaynet import StandIn

        rec = _recording(recording)
        try:
            standin = StandIn(rec, sync=sync, speed=speed)
        except ValueError as e:
            pytest.fail(f"viteproxy: {e}", pytrace=False)
        if loop is None:
            loop = _LoopThread()
        loop.run(standin.start(host, port))
        started.append(standin)
        return StandInServer(standin, host)

    yield start
    if loop is not None:
        for s in started:
            loop.run(s.stop())
        loop.close()
