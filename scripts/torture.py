"""Crash torture: compare-and-set writers against a hub that is SIGKILLed again and again.

    python scripts/torture.py                 # 200 kills (the long run)
    python scripts/torture.py --kills 20      # the CI variant (tests/test_torture.py)

Several writer processes increment shared counters with compare-and-set: read the key and its
revision, then ``set value+1 expect=rev``.  Every write carries a request id and is resent with the
*same* id until the hub gives a definite answer (committed, possibly ``duplicate``, or conflict), so
each write's outcome is known even when the hub died before replying; a writer appends every
acknowledged ``(rev, key, value)`` to its own log, flushed and fsynced line by line.  Meanwhile the
hub is SIGKILLed at random moments and restarted on the same data dir.

After every kill: the store (a copy of the database and its WAL) passes ``PRAGMA integrity_check``,
every write acknowledged so far is in it, and the mirror parses.  At the end, after a clean stop:
every acknowledged write is in the history exactly as acknowledged (lost = 0); each counter's
history is exactly 1, 2, ..., final with no value applied twice, and its final value equals the
number of acknowledged increments; revisions are unique across writers and increase within each
writer's log; ``PRAGMA integrity_check`` is ok on a read-only copy; every mirror seen after a kill
matches the store as it was at the mirror's revision; and after a clean start and stop the mirror
matches the store exactly.  The last line printed is the summary; exit status 0 means every check
passed.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import msgspec  # noqa: E402
import zmq  # noqa: E402

from statehub.connection import Connection  # noqa: E402
from statehub.hub.errors import ConflictError, HubUnavailable, NotFound, OutcomeUnknown, StorageError  # noqa: E402
from statehub.hub.mirror import MirrorError, MirrorState, read_mirror  # noqa: E402
from statehub.hub.paths import Layout  # noqa: E402
from statehub.hub.protocol import PROTOCOL_VERSION, Committed, Get, Item, Set  # noqa: E402
from statehub.testing import HubProcess  # noqa: E402

RESOLVE_SECONDS = 120.0  # a pending write must get a definite answer within this (request ids live 600 s)


# --- the writer process -------------------------------------------------------------------


def run_writer(
    data_dir: Path, index: int, keys: list[str], log_path: Path, stats_path: Path, seed: int
) -> int:
    """Increment random counters until SIGTERM; log each acknowledged write; write stats at the end."""
    stopping = False

    def stop(_signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    rng = random.Random(seed)
    stats: Counter[str] = Counter()
    context: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    connection = Connection(context, data_dir, timeout=0.5)
    last_rev = 0
    with open(log_path, "a", encoding="ascii") as log:
        while not stopping:
            key = rng.choice(keys)
            current = _read_counter(connection, key, stats)
            if current is None:
                continue
            value, rev = current
            write = Set(
                v=PROTOCOL_VERSION,
                key=key,
                value=value + 1,
                expect=rev,
                request_id=uuid.uuid4().hex,
                source="torture",
                user=f"w{index}",
            )
            committed = _resolve(connection, write, stats)
            if committed is None:
                continue
            if committed.rev <= last_rev:
                stats["nonincreasing"] += 1
            last_rev = committed.rev
            log.write(f"{committed.rev} {key} {value + 1}\n")
            log.flush()
            os.fsync(log.fileno())
            stats["acked"] += 1
    connection.close()
    context.destroy(linger=0)
    stats_path.write_text(json.dumps(dict(stats)), encoding="utf-8")
    return 0


def _read_counter(connection: Connection, key: str, stats: Counter[str]) -> tuple[int, int] | None:
    """(value, rev) of a counter, (0, 0) when absent; None when the hub is down (after a short pause)."""
    try:
        reply = connection.call(Get(v=PROTOCOL_VERSION, key=key), Item)
    except NotFound:
        return 0, 0
    except (HubUnavailable, StorageError):
        stats["unavailable"] += 1
        time.sleep(0.01)
        return None
    return int(reply.value), reply.rev


def _resolve(connection: Connection, write: Set, stats: Counter[str]) -> Committed | None:
    """Send ``write`` (resending the same request id) until it is committed or refused.

    A reply lost to a kill leaves the outcome open; the same request id makes the hub answer
    a write it already applied with its original revision (``duplicate``) instead of applying
    it again, so the outcome is always settled.  None: not applied (conflict or storage refusal).
    """
    deadline = time.monotonic() + RESOLVE_SECONDS
    attempts = 0
    while time.monotonic() < deadline:
        attempts += 1
        try:
            reply = connection.call(write, Committed)
        except ConflictError:
            stats["conflicts"] += 1
            return None
        except StorageError:
            stats["storage_refusals"] += 1
            return None
        except (HubUnavailable, OutcomeUnknown):  # not sent, or sent and unanswered: the same id settles it
            stats["unavailable"] += 1
            time.sleep(0.01)
            continue
        if attempts > 1:
            stats["resent"] += 1
        if reply.duplicate:
            stats["duplicates"] += 1
        return reply
    stats["unresolved"] += 1
    return None


# --- the supervisor -----------------------------------------------------------------------


@dataclass
class Summary:
    kills: int = 0
    writers: int = 0
    acked: int = 0
    lost: int = 0
    double_applied: int = 0
    wrong_values: int = 0
    nonincreasing: int = 0
    duplicate_revs: int = 0
    unacked_applied: int = 0
    unresolved: int = 0
    conflicts: int = 0
    duplicates: int = 0
    resent: int = 0
    integrity_checks: int = 0
    integrity_failures: int = 0
    mirrors_checked: int = 0
    mirror_failures: int = 0
    stray_temp_files: int = 0
    final_rev: int = 0
    counters: dict[str, int] = field(default_factory=dict)
    elapsed: float = 0.0
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def line(self) -> str:
        return (
            f"torture: kills={self.kills} writers={self.writers} acked={self.acked} lost={self.lost} "
            f"double_applied={self.double_applied} unresolved={self.unresolved} conflicts={self.conflicts} "
            f"duplicates={self.duplicates} resent={self.resent} integrity={self.integrity_checks - self.integrity_failures}"
            f"/{self.integrity_checks} ok mirrors={self.mirrors_checked - self.mirror_failures}/{self.mirrors_checked} ok "
            f"stray_temp_files={self.stray_temp_files} final_rev={self.final_rev} elapsed={self.elapsed:.1f}s "
            f"{'PASS' if self.ok else 'FAIL'}"
        )


class AckLog:
    """Reads the writers' logs as they grow, complete lines only."""

    def __init__(self, paths: list[Path]) -> None:
        self._offsets = {path: 0 for path in paths}
        self.entries: list[tuple[int, str, int, int]] = []  # (rev, key, value, writer)

    def read_new(self) -> list[tuple[int, str, int, int]]:
        new = []
        for writer, path in enumerate(self._offsets):
            if not path.exists():
                continue
            data = path.read_bytes()[self._offsets[path] :]
            complete = data[: data.rfind(b"\n") + 1]
            self._offsets[path] += len(complete)
            for line in complete.decode("ascii").splitlines():
                rev, key, value = line.split()
                new.append((int(rev), key, int(value), writer))
        self.entries.extend(new)
        return new


def copy_store(layout: Layout, target: Path) -> Path:
    """Copy the store and its WAL (the hub is not running) so checks never touch the original."""
    if target.exists():
        shutil.rmtree(target)
    target.mkdir(parents=True)
    for suffix in ("", "-wal"):
        source = layout.store.with_name(layout.store.name + suffix)
        if source.exists():
            shutil.copy2(source, target / source.name)
    return target / layout.store.name


def integrity(db: Path, *, readonly: bool) -> tuple[str, sqlite3.Connection]:
    uri = f"file:{db}?mode=ro" if readonly else f"file:{db}"
    conn = sqlite3.connect(uri, uri=True, isolation_level=None)
    rows = [row[0] for row in conn.execute("PRAGMA integrity_check")]
    return "; ".join(rows), conn


def history_rows(conn: sqlite3.Connection) -> list[tuple[int, int, str, str, Any]]:
    decode = msgspec.msgpack.decode
    return [
        (rev, idx, key, op, decode(value) if value is not None else None)
        for rev, idx, key, op, value in conn.execute(
            "SELECT rev, idx, key, op, value FROM history ORDER BY rev, idx"
        )
    ]


def check_after_kill(layout: Layout, scratch: Path, acks: AckLog, summary: Summary) -> MirrorState | None:
    """Integrity of the crashed store, every acknowledged write in it, and a whole mirror."""
    db = copy_store(layout, scratch / "after-kill")
    summary.integrity_checks += 1
    result, conn = integrity(db, readonly=False)  # a copy: WAL recovery may write to it
    try:
        if result != "ok":
            summary.integrity_failures += 1
            summary.problems.append(f"integrity_check after kill {summary.kills}: {result}")
        new = acks.read_new()
        found = {
            (rev, key): value
            for rev, key, value in conn.execute(
                "SELECT rev, key, value FROM history WHERE rev >= ?", (min((e[0] for e in new), default=0),)
            )
        }
        for rev, key, value, writer in new:
            blob = found.get((rev, key))
            if blob is None or msgspec.msgpack.decode(blob) != value:
                summary.lost += 1
                summary.problems.append(
                    f"after kill {summary.kills}: acknowledged ({rev}, {key}, {value}) of w{writer} missing"
                )
    finally:
        conn.close()
    summary.stray_temp_files = len(list(layout.data_dir.glob(".state.txt.*.tmp")))
    if not layout.mirror.exists():
        return None
    summary.mirrors_checked += 1
    try:
        return read_mirror(layout.mirror)
    except (MirrorError, ValueError) as exc:
        summary.mirror_failures += 1
        summary.problems.append(f"mirror after kill {summary.kills} does not parse: {exc}")
        return None


def check_mirrors_against_history(
    mirrors: list[MirrorState], history: list[tuple[int, int, str, str, Any]], epoch: str, summary: Summary
) -> None:
    """Each mirror equals the store as it was at the mirror's revision (rebuilt from history)."""
    state: dict[str, tuple[Any, int]] = {}
    position = 0
    for mirror in sorted(mirrors, key=lambda m: m.rev):
        while position < len(history) and history[position][0] <= mirror.rev:
            rev, _idx, key, op, value = history[position]
            if op == "set":
                state[key] = (value, rev)
            else:
                state.pop(key, None)
            position += 1
        seen = {key: (item.value, item.rev) for key, item in mirror.items.items()}
        if mirror.epoch != epoch or seen != state:
            summary.mirror_failures += 1
            summary.problems.append(
                f"mirror at revision {mirror.rev} differs from the store at that revision"
            )


def check_final(
    layout: Layout, scratch: Path, acks: AckLog, writer_stats: list[dict[str, int]], summary: Summary
) -> tuple[list[tuple[int, int, str, str, Any]], str]:
    """Check the store after the last clean stop; return its history and epoch."""
    db = copy_store(layout, scratch / "final")
    result, conn = integrity(db, readonly=True)
    summary.integrity_checks += 1
    if result != "ok":
        summary.integrity_failures += 1
        summary.problems.append(f"final integrity_check: {result}")
    try:
        history = history_rows(conn)
        meta = dict(conn.execute("SELECT name, value FROM meta").fetchall())
        kv = {key: msgspec.msgpack.decode(value) for key, value in conn.execute("SELECT key, value FROM kv")}
    finally:
        conn.close()
    summary.final_rev = int(meta["rev"])
    acks.read_new()
    summary.acked = len(acks.entries)
    for stats in writer_stats:
        summary.unresolved += stats.get("unresolved", 0)
        summary.conflicts += stats.get("conflicts", 0)
        summary.duplicates += stats.get("duplicates", 0)
        summary.resent += stats.get("resent", 0)
        summary.nonincreasing += stats.get("nonincreasing", 0)
    if summary.unresolved:
        summary.problems.append(f"{summary.unresolved} writes never got a definite answer")
    if summary.nonincreasing:
        summary.problems.append(
            f"{summary.nonincreasing} acknowledged revisions did not increase within a writer"
        )

    # Unique revisions across writers, increasing within each writer's log.
    revs = Counter(rev for rev, _key, _value, _writer in acks.entries)
    summary.duplicate_revs = sum(n - 1 for n in revs.values() if n > 1)
    if summary.duplicate_revs:
        summary.problems.append(f"{summary.duplicate_revs} revisions acknowledged to more than one write")
    by_writer: dict[int, list[int]] = {}
    for rev, _key, _value, writer in acks.entries:
        by_writer.setdefault(writer, []).append(rev)
    for writer, seq in by_writer.items():
        if any(b <= a for a, b in zip(seq, seq[1:], strict=False)):
            summary.nonincreasing += 1
            summary.problems.append(f"writer w{writer}'s log has revisions that do not increase")

    # Every acknowledged write is in the history exactly as acknowledged.
    rows = {(rev, key): (op, value) for rev, _idx, key, op, value in history}
    for rev, key, value, writer in acks.entries:
        if rows.get((rev, key)) != ("set", value):
            summary.lost += 1
            summary.problems.append(
                f"acknowledged ({rev}, {key}, {value}) of w{writer} is not in the history"
            )

    # Each counter went 1, 2, ..., final: every increment applied exactly once, and every applied
    # increment was acknowledged (outcomes were always settled).
    acked_per_key = Counter(key for _rev, key, _value, _writer in acks.entries)
    acked_revs = set(revs)
    for key in sorted(kv):
        values = [value for _rev, _idx, k, op, value in history if k == key and op == "set"]
        applied_revs = [rev for rev, _idx, k, _op, _value in history if k == key]
        summary.counters[key] = kv[key]
        if values != list(range(1, len(values) + 1)):
            repeated = len(values) - len(set(values))
            summary.double_applied += max(repeated, 1)
            summary.problems.append(f"{key}'s history is not 1..{len(values)}: {values[:20]}...")
        if kv[key] != acked_per_key[key]:
            summary.wrong_values += 1
            summary.problems.append(
                f"{key} = {kv[key]} but {acked_per_key[key]} increments were acknowledged"
            )
        unacked = [rev for rev in applied_revs if rev not in acked_revs]
        summary.unacked_applied += len(unacked)
    if summary.unacked_applied:
        summary.problems.append(f"{summary.unacked_applied} applied writes were never acknowledged")
    if history and history[-1][0] != summary.final_rev:
        summary.problems.append(
            f"the store's revision {summary.final_rev} is not its last history row {history[-1][0]}"
        )
    return history, str(meta["epoch"])


def check_clean_mirror(layout: Layout, scratch: Path, summary: Summary) -> None:
    """After a clean stop, the mirror states the store's revision and holds exactly its rows."""
    try:
        mirror = read_mirror(layout.mirror)
    except (MirrorError, ValueError) as exc:
        summary.mirror_failures += 1
        summary.problems.append(f"final mirror does not parse: {exc}")
        return
    summary.mirrors_checked += 1
    db = copy_store(layout, scratch / "clean")
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        meta = dict(conn.execute("SELECT name, value FROM meta").fetchall())
        rows = conn.execute("SELECT key, value, rev, created_rev, time, source, user FROM kv").fetchall()
    finally:
        conn.close()
    store = {
        key: (msgspec.msgpack.decode(value), rev, created, round(when, 6), source, user)
        for key, value, rev, created, when, source, user in rows
    }
    seen = {
        key: (item.value, item.rev, item.created_rev, round(item.time, 6), item.source, item.user)
        for key, item in mirror.items.items()
    }
    if (mirror.epoch, mirror.rev) != (meta["epoch"], int(meta["rev"])) or seen != store:
        summary.mirror_failures += 1
        summary.problems.append(
            f"after a clean stop the mirror (revision {mirror.rev}) differs from the store (revision {meta['rev']})"
        )


def supervise(args: argparse.Namespace) -> Summary:
    started = time.monotonic()
    rng = random.Random(args.seed)
    work = Path(args.work_dir or tempfile.mkdtemp(prefix="statehub-torture-"))
    work.mkdir(parents=True, exist_ok=True)
    layout = Layout(work / "data")
    scratch = work / "scratch"
    logs = [work / f"writer{n}.log" for n in range(args.writers)]
    stats_files = [work / f"writer{n}.json" for n in range(args.writers)]
    summary = Summary(writers=args.writers)
    acks = AckLog(logs)
    mirrors: list[MirrorState] = []
    hub = HubProcess(layout.data_dir, heartbeat=0.2)
    hub.start()
    writers = [
        subprocess.Popen(
            [
                sys.executable,
                __file__,
                "--writer",
                str(n),
                "--work-dir",
                str(work),
                "--keys",
                str(args.keys),
                "--seed",
                str(args.seed * 1000 + n),
            ]
        )
        for n in range(args.writers)
    ]
    try:
        for kill in range(1, args.kills + 1):
            # Mostly mid-stream; sometimes right after start (first mirror write, first requests).
            run = rng.uniform(0.0, 0.02) if rng.random() < 0.1 else rng.uniform(args.min_run, args.max_run)
            time.sleep(run)
            hub.kill()
            summary.kills = kill
            mirror = check_after_kill(layout, scratch, acks, summary)
            if mirror is not None:
                mirrors.append(mirror)
            if args.progress and kill % args.progress == 0:
                print(f"kill {kill}: {len(acks.entries)} acknowledged writes so far", flush=True)
            hub.start()
        time.sleep(args.settle)  # let every writer settle its pending write against a live hub
        for writer in writers:
            writer.send_signal(signal.SIGTERM)
        for writer in writers:
            if writer.wait(RESOLVE_SECONDS + 30) != 0:
                summary.problems.append(f"a writer exited with {writer.returncode}")
        code = hub.terminate()
        if code != 0:
            summary.problems.append(f"the hub's clean stop exited {code}:\n{hub.log}")
        writer_stats = [json.loads(p.read_text()) if p.exists() else {} for p in stats_files]
        history, epoch = check_final(layout, scratch, acks, writer_stats, summary)
        check_mirrors_against_history(mirrors, history, epoch, summary)
        hub.start()  # a clean start and stop: the mirror must then match the store exactly
        code = hub.terminate()
        if code != 0:
            summary.problems.append(f"the final clean stop exited {code}")
        check_clean_mirror(layout, scratch, summary)
        if summary.acked < args.kills:
            summary.problems.append(
                f"only {summary.acked} writes were acknowledged in {args.kills} hub lifetimes"
            )
    finally:
        for writer in writers:
            if writer.poll() is None:
                writer.kill()
                writer.wait()
        hub.kill()
        summary.elapsed = time.monotonic() - started
        if not args.work_dir and summary.ok and not args.keep:
            shutil.rmtree(work, ignore_errors=True)
        elif not summary.ok:
            print(f"torture: kept {work} for inspection", file=sys.stderr)
    return summary


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--kills", type=int, default=200, help="how many times to SIGKILL the hub (default 200)")
    p.add_argument("--writers", type=int, default=4, help="writer processes (default 4)")
    p.add_argument("--keys", type=int, default=3, help="shared counters (default 3)")
    p.add_argument("--min-run", type=float, default=0.05, help="shortest hub lifetime between kills, s")
    p.add_argument("--max-run", type=float, default=0.4, help="longest hub lifetime between kills, s")
    p.add_argument(
        "--settle", type=float, default=0.5, help="seconds of live hub before stopping the writers"
    )
    p.add_argument("--seed", type=int, default=int(time.time()) % 100_000)
    p.add_argument(
        "--work-dir", help="where the data dir and logs go (default: a temp dir, removed on success)"
    )
    p.add_argument("--keep", action="store_true", help="keep the temp dir even on success")
    p.add_argument("--json", dest="json_path", help="also write the summary as JSON here")
    p.add_argument("--progress", type=int, default=0, metavar="N", help="print progress every N kills")
    p.add_argument("--writer", type=int, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.writer is not None:
        work = Path(args.work_dir)
        keys = [f"torture.c{i}" for i in range(args.keys)]
        return run_writer(
            work / "data",
            args.writer,
            keys,
            work / f"writer{args.writer}.log",
            work / f"writer{args.writer}.json",
            args.seed,
        )
    summary = supervise(args)
    for problem in summary.problems[:20]:
        print(f"problem: {problem}", file=sys.stderr)
    if args.json_path:
        data = {k: v for k, v in asdict(summary).items()}
        data["ok"] = summary.ok
        data["seed"] = args.seed
        Path(args.json_path).write_text(json.dumps(data, indent=2), encoding="utf-8")
    print(f"{summary.line()} seed={args.seed}", flush=True)
    return 0 if summary.ok else 1


if __name__ == "__main__":
    sys.exit(main())
