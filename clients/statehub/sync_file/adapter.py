"""The file-watcher adapter's loop: hub changes into the file, the person's saves into the hub.

One thread owns everything (the subscription's sockets, the client's, the file):
each turn waits at most one poll interval for a hub event, then looks at the
file, applies a save if there is one, and rewrites the file if the hub's state
moved.  Rules that keep a person's typing safe:

- the file is rewritten only when what is on disk is what we wrote, or a save
  we have fully handled; a save not yet applied, or one that does not parse,
  is never overwritten;
- while the hub is down the file is left alone and a save waits; it is applied
  (with the same compare-and-set checks) when the hub is back;
- an edit the hub refuses goes to the conflict note before the file is rewritten.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from statehub import (
    MAX_TXN_OPS,
    CaughtUp,
    Client,
    ConflictError,
    Event,
    HubDown,
    HubUnavailable,
    InvalidRequest,
    OutcomeUnknown,
    StatehubError,
    StorageError,
    Subscription,
    Synced,
    check_prefix,
)
from statehub.hub.atomic_file import fsync_folder
from statehub.sync_file.document import FileError, Format, Header, SavedFile, parse, render, value_position
from statehub.sync_file.note import note_path, record
from statehub.sync_file.plan import Plan, plan_save, refuse_conflicts
from statehub.sync_file.watch import MISSING, POLL_INTERVAL, SETTLE, FileWatcher

log = logging.getLogger(__name__)

RETRY_AFTER = 1.0  # seconds before a save the hub did not take is tried again
NEW_FILE_MODE = 0o600  # the state may hold secrets: private unless the person's file says otherwise


@dataclass(frozen=True)
class Options:
    path: Path
    prefix: str = ""
    fmt: Format = "toml"
    interval: float = POLL_INTERVAL
    settle: float = SETTLE


@dataclass
class Counters:
    """What the adapter did, for logs, tests and benchmarks."""

    saves: int = 0  # saves read and handled (applied, refused or nothing to do)
    changes: int = 0  # keys written to the hub
    refused: int = 0  # edits kept in the conflict note
    rejected: int = 0  # saves that did not parse
    rewrites: int = 0  # times the file was written
    last_rev: int = 0  # revision of the last rewrite
    last_look: float = 0.0  # time.monotonic() when the file was last looked at
    seen_rev: int = 0  # revision of the last hub event taken in


class FileSync:
    """Keeps ``options.path`` equal to the state under ``options.prefix`` of the hub ``client`` talks to.

    ``client`` writes the saves (its source should be ``file``) and subscribes;
    use it from the thread that calls ``run`` only, and close it afterwards.
    """

    def __init__(self, client: Client, options: Options) -> None:
        check_prefix(options.prefix)
        self.client = client
        self.options = options
        self.path = options.path.absolute()
        self.note_name = note_path(self.path).name
        self.watcher = FileWatcher(self.path, options.settle)
        self.counters = Counters()
        self.live = False
        self.dirty = False  # the file may differ from the hub's state
        self.blocked = False  # the file holds a save we could not use: leave it as the person left it
        self.pending: bytes | None = None  # a whole save not yet applied
        self.retry_at = 0.0
        self.wait_rev = 0  # rewrite only once the replica holds our own writes
        self._told_down = False

    def run(self, stop: threading.Event) -> None:
        """Sync until ``stop`` is set."""
        opts = self.options
        where = "the remote hub" if self.client.is_remote else str(self.client.data_dir)
        log.info("syncing %s (%s) with the keys under %r in %s", self.path, opts.fmt, opts.prefix, where)
        with self.client.subscribe(opts.prefix) as subscription:
            while not stop.is_set():
                self.turn(subscription)

    def turn(self, subscription: Subscription) -> None:
        event = subscription.next_event(self.options.interval)
        if event is not None:
            self._on_event(event)
        now = time.monotonic()
        self._on_file(self.watcher.poll(now))
        self.counters.last_look = now
        if self.pending is not None and self.live and time.monotonic() >= self.retry_at:
            self._apply(self.pending, subscription)
        self._rewrite_if_needed(subscription)

    # --- hub events ----------------------------------------------------------------

    def _on_event(self, event: Event) -> None:
        if isinstance(event, HubDown):
            self.live = False
            log.warning(
                "hub down (%s): %s is left as it is; a save made now is applied when the hub is back",
                event.reason,
                self.path.name,
            )
            return
        self.counters.seen_rev = event.rev
        if isinstance(event, (Synced, CaughtUp)):
            if not self.live and not (isinstance(event, Synced) and event.first):
                log.info("the hub is back at revision %d", event.rev)
            self.live = True
            self._told_down = False
        self.dirty = True

    # --- the person's saves --------------------------------------------------------

    def _on_file(self, content: Any) -> None:
        if content is None:
            return
        if content is MISSING:
            self.dirty, self.blocked, self.pending = True, False, None
            log.info("%s is missing; it is written from the hub's state", self.path)
            return
        self.pending = content
        self.retry_at = 0.0
        if not self.live and not self._told_down:
            self._told_down = True
            log.warning("%s saved while the hub is down: applied when the hub is back", self.path.name)

    def _apply(self, data: bytes, subscription: Subscription) -> None:
        saved = self._parse(data)
        if saved is None:
            return
        try:
            base_rev, base = self._base(saved.header, subscription)
            plan = plan_save(saved.values, dict(subscription.items), base_rev, base)
            changes, rev = self._send(plan, base)
        except (HubUnavailable, OutcomeUnknown, StorageError) as exc:  # a retry plans against what the hub has
            self.retry_at = time.monotonic() + RETRY_AFTER
            log.warning("the hub did not take the save of %s (%s); trying again", self.path.name, exc.message)
            return
        except StatehubError as exc:  # e.g. a value the schema refuses, or one over the hub's size limit
            self.pending, self.blocked = None, True
            self.counters.rejected += 1
            where = self._where_refused(data, saved.values, exc.message)
            log.error("%s: the hub refused this save: %s; nothing was applied", where, exc.message)
            return
        self.pending = None
        self.counters.saves += 1
        self.counters.changes += changes
        self._report(saved, plan, changes, rev)
        self.wait_rev = max(self.wait_rev, rev)
        self.dirty = True

    def _where_refused(self, data: bytes, values: dict[str, Any], message: str) -> str:
        """``path:line:column`` of the value a refusal names (the schema's messages quote the key), else the path."""
        named = [key for key in values if f"'{key}'" in message]
        if not named:
            return str(self.path)
        line, column = value_position(data.decode("utf-8"), max(named, key=len))
        return f"{self.path}:{line}:{column}"

    def _parse(self, data: bytes) -> SavedFile | None:
        try:
            text = data.decode("utf-8")
            saved = parse(self.options.fmt, text, self.options.prefix)
        except UnicodeDecodeError as exc:
            line = data[: exc.start].count(b"\n") + 1
            error = FileError(f"this is not UTF-8 text (byte {exc.start})", line)
        except FileError as exc:
            error = exc
        else:
            self.blocked = False
            return saved
        self.pending, self.blocked = None, True
        self.counters.rejected += 1
        level = logging.WARNING if error.incomplete else logging.ERROR
        log.log(
            level,
            "%s; nothing was applied, and the file is left as it is until it parses",
            error.describe(self.path),
        )
        return None

    def _base(self, header: Header, subscription: Subscription) -> tuple[int | None, dict[str, Any] | None]:
        """The file's revision and the state at it, as far as they can be known."""
        if header.epoch != subscription.epoch or header.rev > subscription.rev:
            log.warning(
                "%s was written from another store (epoch %s, revision %d; the hub has %s at %d): "
                "every edit that differs from the hub goes to the conflict note",
                self.path.name,
                header.epoch,
                header.rev,
                subscription.epoch,
                subscription.rev,
            )
            return None, None
        if header.rev == subscription.rev:
            return header.rev, {key: item.value for key, item in subscription.items.items()}
        try:
            past = self.client.snapshot(self.options.prefix, at_rev=header.rev)
        except InvalidRequest as exc:  # history pruned: keys changed since then are conflicts
            log.warning("the state at revision %d cannot be rebuilt (%s)", header.rev, exc.message)
            return header.rev, None
        return header.rev, {item.key: item.value for item in past.items}

    def _send(self, plan: Plan, base: dict[str, Any] | None) -> tuple[int, int]:
        """Send the plan's ops in txns; return (keys changed, last revision)."""
        changes = rev = 0
        ops, plan.ops = plan.ops, []
        for start in range(0, len(ops), MAX_TXN_OPS):
            chunk = Plan(ops=ops[start : start + MAX_TXN_OPS], refused=plan.refused)
            for _attempt in range(len(chunk.ops) + 1):  # each conflict takes at least one op out
                if not chunk.ops:
                    break
                try:
                    committed = self.client.txn(chunk.ops)  # never queued: a save waits for the hub itself
                    rev = committed.rev
                except ConflictError as exc:
                    if not exc.conflicts:
                        raise
                    refuse_conflicts(chunk, exc.conflicts, base)
                    continue
                changes += len(chunk.ops)
                plan.ops.extend(chunk.ops)
                break
        return changes, rev

    def _report(self, saved: SavedFile, plan: Plan, changes: int, rev: int) -> None:
        if changes:
            keys = ", ".join(op.key for op in plan.ops[:5]) + (", ..." if len(plan.ops) > 5 else "")
            log.info("applied %d change(s) from %s at revision %d: %s", changes, self.path.name, rev, keys)
        if plan.refused:
            self.counters.refused += len(plan.refused)
            where = record(self.path, self.options.fmt, self.path.name, saved.header.rev, plan.refused)
            keys = ", ".join(refusal.key for refusal in plan.refused)
            log.warning(
                "refused %d edit(s) from %s: %s changed in the hub after revision %d; your edits are kept in %s",
                len(plan.refused),
                self.path.name,
                keys,
                saved.header.rev,
                where,
            )

    # --- rewriting the file ----------------------------------------------------------

    def _rewrite_if_needed(self, subscription: Subscription) -> None:
        if not (self.live and self.dirty) or self.blocked or self.pending is not None:
            return
        if subscription.rev < self.wait_rev or not self.watcher.is_quiet():
            return  # our writes are not in the replica yet, or the person is saving: next turn
        header = Header(rev=subscription.rev, epoch=subscription.epoch, prefix=self.options.prefix)
        values = {key: item.value for key, item in subscription.items.items() if not item.secret}
        data = render(self.options.fmt, header, values, self.note_name)
        if self.watcher.shows(data):
            self.dirty = False
            return
        try:
            written = self._replace_if_quiet(data)
        except OSError as exc:
            log.error("cannot write %s: %s; trying again", self.path, exc)
            return
        if written is None:
            return  # the person saved while we wrote: read their save first
        self.watcher.wrote(data, written)
        self.dirty = False
        self.counters.rewrites += 1
        self.counters.last_rev = subscription.rev
        log.info("wrote %s at revision %d (%d keys)", self.path.name, subscription.rev, len(values))

    def _replace_if_quiet(self, data: bytes) -> os.stat_result | None:
        """Write ``data`` atomically, unless the person saved meanwhile; the stat of what was written.

        The temp file is written and fsynced first and the file checked again
        right before the rename, so a save can only be lost if it lands in the
        microseconds between that check and the rename (no portable lock closes
        that gap: editors do not take one).  None: the person saved; nothing written.
        """
        temp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, self._mode())
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            if not self.watcher.is_quiet():
                temp.unlink()
                return None
            written = os.stat(temp)  # before the rename: a save after it must not pass for ours
            os.replace(temp, self.path)
        except BaseException:
            temp.unlink(missing_ok=True)
            raise
        fsync_folder(self.path.parent)
        return written

    def _mode(self) -> int:
        try:
            return os.stat(self.path).st_mode & 0o777
        except FileNotFoundError:
            return NEW_FILE_MODE
