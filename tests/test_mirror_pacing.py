"""Mirror pacing: a rewrite waits for a pause in the commits, but never longer than five intervals."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

from statehub.hub.mirror import read_mirror
from statehub.hub.mirror_writer import MirrorWriter
from statehub.hub.protocol import Set
from statehub.hub.store import Store
from statehub.testing import wait_until

INTERVAL = 0.05


class NeverPausing(MirrorWriter):
    """A writer whose pause is longer than any test: only the lag limit can start a rewrite."""

    PAUSE = 3600.0


class WaitingSeen(NeverPausing):
    """Says when its thread begins waiting for a pause."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.waiting = threading.Event()

    def _wait_for_pause(self) -> None:
        self.waiting.set()
        super()._wait_for_pause()


def _started(writer: MirrorWriter) -> int:
    """Start the thread and let it write the first mirror (a hub's, at start: not paced); its rewrites so far."""
    writer.start()
    writer.request()
    assert wait_until(lambda: writer.written_rev >= 0, 30), "the first mirror was never written"
    return writer.rewrites


def _commit_one(store: Store, writer: MirrorWriter, n: int) -> int:
    applied = store.commit_one(Set(v=1, key=f"k{n % 10}", value=n))
    writer.apply([applied])
    return applied.rev


def test_a_stream_that_never_pauses_still_gets_the_mirror_rewritten(tmp_path: Path) -> None:
    """Commits back to back, never pausing: the mirror is rewritten anyway once it is five intervals behind."""
    store = Store(tmp_path / "state.db")
    writer = NeverPausing(tmp_path / "state.db", tmp_path / "state.txt", INTERVAL)
    first = _started(writer)
    try:
        n = 0
        deadline = time.monotonic() + 30
        while writer.rewrites == first and time.monotonic() < deadline:
            _commit_one(store, writer, n)
            n += 1
        assert writer.rewrites > first, f"no rewrite during {n} commits"
    finally:
        writer.stop()
        store.close()


def test_a_stream_of_commits_is_rewritten_once_per_lag_limit_not_once_per_interval(tmp_path: Path) -> None:
    """While commits stream, rewrites come at most once per five intervals (plus the one under way)."""
    store = Store(tmp_path / "state.db")
    writer = NeverPausing(tmp_path / "state.db", tmp_path / "state.txt", INTERVAL)
    first = _started(writer)
    try:
        _commit_one(store, writer, 0)
        started, n = time.monotonic(), 1
        while time.monotonic() - started < 1.0 and n < 100_000:
            _commit_one(store, writer, n)
            n += 1
        streamed = time.monotonic() - started
        rewrites = writer.rewrites - first
        limit = streamed / (MirrorWriter.MAX_LAG_INTERVALS * INTERVAL) + 2
        assert 1 <= rewrites <= limit, (
            f"{rewrites} rewrites in {streamed:.2f} s of commits (at most {limit:.1f})"
        )
    finally:
        writer.stop()
        store.close()


def test_the_mirror_shows_the_last_commit_once_the_commits_stop(tmp_path: Path) -> None:
    """After a burst, the mirror reaches the burst's last revision without any further commit."""
    store = Store(tmp_path / "state.db")
    writer = MirrorWriter(tmp_path / "state.db", tmp_path / "state.txt", INTERVAL)
    writer.start()
    try:
        last = 0
        for n in range(200):
            last = _commit_one(store, writer, n)
        assert wait_until(lambda: writer.written_rev == last, 20), (
            f"mirror at {writer.written_rev}, store at {last}"
        )
        assert read_mirror(tmp_path / "state.txt").rev == last
    finally:
        writer.stop()
        store.close()


def test_stopping_while_a_rewrite_waits_for_a_pause_ends_the_thread(tmp_path: Path) -> None:
    """A stop that comes while the thread waits for the commits to pause still ends it (SIGTERM under load)."""
    store = Store(tmp_path / "state.db")
    writer = WaitingSeen(tmp_path / "state.db", tmp_path / "state.txt", 60.0)  # waits up to 5 minutes
    writer.written_rev = 0  # as if the first mirror (not paced) were written: the next rewrite waits for a pause
    writer.start()
    try:
        _commit_one(store, writer, 0)  # the thread wakes and waits for a pause that never comes
        assert writer.waiting.wait(30), "the mirror thread never began waiting for a pause"
        stopper = threading.Thread(target=writer.stop, daemon=True)
        stopper.start()
        stopper.join(30)
        assert not stopper.is_alive(), "MirrorWriter.stop() did not return"
        assert read_mirror(tmp_path / "state.txt").rev == 1  # stop() wrote the last mirror
    finally:
        store.close()
