"""Commands on whole states: snapshot, rollback, export, import, queue, restore.

Snapshot and export files, the queue and restore are the hub's file tools
(statehub.hub.state_files, inbox, restore: the entry points docs/clients.md
names); reads and writes go through the Client.  Only typer is imported at
module level; the rest inside each command.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from statehub.cli.base import echo, echo_json, reported, settings_of, working, writing
from statehub.cli.options import JsonOption, PrefixOption, add_command

if TYPE_CHECKING:
    from statehub import Client, Item, Op

DryRun = Annotated[bool, typer.Option("--dry-run", help="Print the changes (old -> new) and apply nothing.")]

snapshot_app = typer.Typer(help="Create, list, show and delete snapshots (plaintext JSON files in the data dir).", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    app.add_typer(snapshot_app, name="snapshot")
    add_command(snapshot_app, snapshot_create, "create")
    add_command(snapshot_app, snapshot_list, "list")
    add_command(snapshot_app, snapshot_show, "show")
    add_command(snapshot_app, snapshot_delete, "delete")
    add_command(app, rollback)
    add_command(app, export_, "export")
    add_command(app, import_, "import")
    add_command(app, queue)
    add_command(app, restore)


def snapshot_create(
    ctx: typer.Context,
    name: Annotated[str | None, typer.Option(help="Keep it under this name (kept until you delete it).")] = None,
    keep: Annotated[int, typer.Option(help="Unnamed snapshots to keep (the oldest go).", min=1)] = 20,
    force: Annotated[bool, typer.Option("--force", help="Replace a named snapshot that exists.")] = False,
    as_json: JsonOption = False,
) -> None:
    """Save the hub's current state as a snapshot."""
    from statehub import InvalidRequest
    from statehub.hub.state_files import check_snapshot_name, save_snapshot, snapshot_dir, state_from_items

    settings = settings_of(ctx)
    with reported(settings.debug), settings.client() as client:
        _refuse_remote(client, "snapshot create", "or save the state on this machine with `statehub export -o FILE`")
        if name:
            check_snapshot_name(name)
            if not force and (snapshot_dir(client.data_dir) / f"{name}.json").exists():
                raise InvalidRequest(
                    f"a snapshot named {name!r} exists already",
                    hint="choose another --name, add --force to replace it, or `statehub snapshot delete` it",
                )
        items = client.snapshot()
        path = save_snapshot(client.data_dir, state_from_items(items.items, items.rev, items.epoch, name or ""), keep)
    if as_json:
        echo_json({"path": str(path), "name": path.stem, "rev": items.rev, "keys": len(items.items)})
    else:
        echo(f"snapshot {path.stem}: {len(items.items)} keys at revision {items.rev} ({path})")


def snapshot_list(ctx: typer.Context, as_json: JsonOption = False) -> None:
    """List snapshots, oldest first."""
    from statehub import iso_time, when_text
    from statehub.hub.state_files import list_snapshots

    settings = settings_of(ctx)
    with reported(settings.debug):
        with settings.client() as client:
            _refuse_remote(client, "snapshot list")
        snapshots = list_snapshots(settings.data_path())
    if as_json:
        rows = [{"name": n, "rev": s.rev, "epoch": s.epoch, "created": iso_time(s.created), "keys": len(s.values)} for n, s in snapshots]
        echo_json(rows)
        return
    if not snapshots:
        echo("no snapshots yet; make one with `statehub snapshot create`")
    for name, state in snapshots:
        echo(f"{name:<40} revision {state.rev:<8} {len(state.values):>6} keys  {when_text(state.created)}")


def snapshot_show(ctx: typer.Context, name: str, as_json: JsonOption = False) -> None:
    """Print a snapshot file (with --json, on one line)."""
    import json

    from statehub.hub.state_files import find_snapshot

    settings = settings_of(ctx)
    with reported(settings.debug):
        with settings.client() as client:
            _refuse_remote(client, "snapshot show")
        text = find_snapshot(settings.data_path(), name).read_text(encoding="utf-8")
    if as_json:
        echo_json(json.loads(text))
    else:
        sys.stdout.write(text)


def snapshot_delete(ctx: typer.Context, name: str, as_json: JsonOption = False) -> None:
    """Delete a snapshot from the data dir (named or automatic)."""
    from statehub import NotFound
    from statehub.hub.state_files import check_snapshot_name, snapshot_dir

    settings = settings_of(ctx)
    with reported(settings.debug):
        with settings.client() as client:
            _refuse_remote(client, "snapshot delete")
        if not name.startswith("auto-"):
            check_snapshot_name(name)  # also keeps a path from reaching outside the folder
        path = snapshot_dir(settings.data_path()) / f"{name}.json"
        if "/" in name or not path.is_file():
            raise NotFound(f"no snapshot named {name!r}", hint="see `statehub snapshot list`")
        path.unlink()
    if as_json:
        echo_json({"deleted": name, "path": str(path)})
    else:
        echo(f"deleted snapshot {name} ({path})")


def rollback(
    ctx: typer.Context,
    name: Annotated[str | None, typer.Argument(help="The snapshot to go back to.")] = None,
    to_rev: Annotated[int | None, typer.Option("--to-rev", help="Go back to the state right after this revision (from history).", min=0)] = None,
    prefix: PrefixOption = "",
    dry_run: DryRun = False,
    as_json: JsonOption = False,
) -> None:
    """Return to a snapshot's state (or a past revision's) as one new, published change.

    History is never rewritten: the rollback is a txn with source 'rollback', and
    each key is changed only if it still holds what you saw (else nothing is applied).
    """
    from statehub import InvalidRequest
    from statehub.hub.state_files import find_snapshot, read

    settings = settings_of(ctx)
    with reported(settings.debug), settings.client(source="rollback") as client:
        if (name is None) == (to_rev is None):
            raise InvalidRequest("give a snapshot NAME or --to-rev R (one of them)")
        if name is not None:
            _refuse_remote(client, "rollback NAME", "or go back to a revision from here with `statehub rollback --to-rev R`")
            target = read(find_snapshot(settings.data_path(), name)).values
            what = f"snapshot {name}"
        else:  # --to-rev, as checked above
            target = {i.key: i.value for i in client.snapshot(prefix, at_rev=to_rev).items}
            what = f"revision {to_rev}"
        target = {k: v for k, v in target.items() if k.startswith(prefix)}
        _apply_state(client, target, prefix=prefix, replace=True, dry_run=dry_run, what=what, as_json=as_json)


def _refuse_remote(client: Client, command: str, instead: str = "") -> None:
    """Snapshots and the store are files on the hub's machine: a command on them cannot reach a remote hub's."""
    from statehub import InvalidRequest

    if client.is_remote:
        raise InvalidRequest(
            f"`statehub {command}` works on the files in the hub's data dir, on the hub's machine, "
            "and this client talks to a remote hub",
            hint=f"run it on the hub's machine{', ' + instead if instead else ''}",
        )


def _apply_state(
    client: Client,
    target: dict[str, Any],
    *,
    prefix: str,
    replace: bool,
    dry_run: bool,
    what: str,
    as_json: bool,
    sealed: dict[str, str] | None = None,
) -> None:
    from statehub.hub.state_files import changes_to, describe, placeholders_skipped

    current = client.snapshot(prefix).items
    sealed = {k: v for k, v in (sealed or {}).items() if k.startswith(prefix)}
    ops = changes_to(current, target, replace=replace, prefix=prefix, sealed=sealed)
    lines = describe(ops, current)
    changes = _change_objects(ops, current)
    skipped = placeholders_skipped(current, target, sealed)
    if skipped:
        echo(
            f"note: {len(skipped)} keys hold a secret's placeholder and are no secret here, so they were left "
            f"as they are (first: {skipped[0]}); set them with `statehub secret set KEY`",
            err=True,
        )
    if dry_run or not ops:
        _report(what, ops, lines, changes, None, dry_run, as_json)
        return
    with writing(), working(f"applying {len(ops)} changes from {what}", quiet=as_json):
        committed = client.txn(ops)
    _report(what, ops, lines, changes, committed.rev, dry_run, as_json)


def _change_objects(ops: list[Op], current: list[Item]) -> list[dict[str, Any]]:
    """Each change as --json shows it: key, op, old and new (null when absent), whether it existed."""
    now = {item.key: item.value for item in current}
    return [
        {
            "key": op.key,
            "op": op.op,
            "old": now.get(op.key),
            "existed": op.key in now,
            "new": op.value if op.op == "set" and op.secret != "sealed" else None,
        }
        for op in ops
    ]


def _report(
    what: str,
    ops: list[Op],
    lines: list[str],
    changes: list[dict[str, Any]],
    rev: int | None,
    dry_run: bool,
    as_json: bool,
) -> None:
    if as_json:
        echo_json({"target": what, "changes": changes, "applied": rev is not None, "rev": rev, "dry_run": dry_run})
        return
    for line in lines:
        echo(line)
    if not ops:
        echo(f"nothing to change: the state already matches {what}")
    elif rev is None:
        echo(f"dry run: {len(ops)} keys would change to match {what}; nothing applied")
    else:
        echo(f"{len(ops)} keys changed to match {what} at revision {rev}")


def export_(
    ctx: typer.Context,
    fmt: Annotated[str, typer.Option("--format", help="json or toml (TOML cannot hold null).")] = "json",
    prefix: PrefixOption = "",
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Write here (atomically) instead of stdout.")] = None,
    include_secrets: Annotated[
        bool,
        typer.Option(
            "--include-secrets",
            help="Add secrets, encrypted (a [sealed] table): only a hub with the same secrets key can import them.",
        ),
    ] = False,
    as_json: Annotated[
        bool, typer.Option("--json", help="Same as --format json; with --output, print what was written as JSON.")
    ] = False,
) -> None:
    """Write the current state as a plaintext file that `statehub import` reads.

    Secrets show as <secret> unless --include-secrets (encrypted, never in plaintext).
    """
    from statehub.hub.atomic_file import write_atomically
    from statehub.hub.state_files import format_of, render, state_from_items

    settings = settings_of(ctx)
    with reported(settings.debug), settings.client() as client:
        chosen = format_of(Path(f"x.{'json' if as_json else fmt}"))
        items = client.snapshot(prefix, sealed=include_secrets)
        data = render(state_from_items(items.items, items.rev, items.epoch), chosen)
        if output is None:
            sys.stdout.write(data.decode())
            return
        write_atomically(output, data, mode=0o600)
    if as_json:
        echo_json({"path": str(output), "rev": items.rev, "epoch": items.epoch, "keys": len(items.items)})
    else:
        echo(f"exported {len(items.items)} keys at revision {items.rev} to {output}", err=True)


def import_(
    ctx: typer.Context,
    file: Annotated[
        str,
        typer.Argument(
            help="A .json or .toml file (- for stdin): the export format, or a plain {\"key\": value} document.",
            metavar="FILE",
        ),
    ],
    fmt: Annotated[
        str | None, typer.Option("--format", help="json or toml (default: from the file name; json for stdin).")
    ] = None,
    replace: Annotated[bool, typer.Option("--replace", help="Also unset keys (under --prefix) that the file lacks.")] = False,
    prefix: PrefixOption = "",
    dry_run: DryRun = False,
    as_json: JsonOption = False,
) -> None:
    """Apply a plaintext file: validated first, then all of it as one txn, or nothing."""
    from statehub.hub.state_files import format_of, parse, read

    settings = settings_of(ctx)
    with reported(settings.debug):
        with working(f"reading {'stdin' if file == '-' else file}", quiet=as_json):
            if file == "-":
                state = parse(sys.stdin.read(), format_of(Path("stdin"), fmt or "json"), "<stdin>")
            else:
                state = read(Path(file), fmt)
        target = {k: v for k, v in state.values.items() if k.startswith(prefix)}
        with settings.client(source="import") as client:
            _apply_state(
                client,
                target,
                prefix=prefix,
                replace=replace,
                dry_run=dry_run,
                what="stdin" if file == "-" else file,
                as_json=as_json,
                sealed=state.sealed,
            )


def queue(ctx: typer.Context, as_json: JsonOption = False) -> None:
    """List writes queued while the hub was down (pending) and those it refused (rejected)."""
    from statehub import json_text, write_ops
    from statehub.hub import inbox

    data_dir = settings_of(ctx).data_path()

    def describe(queued: inbox.QueuedWrite) -> dict[str, Any]:
        ops = write_ops(queued.write) if queued.write is not None else []
        return {
            "file": str(queued.path),
            "keys": [op.key for op in ops],
            "ops": [f"{op.op} {op.key}" + (f" = {json_text(op.value)}" if op.op == "set" else "") for op in ops],
            "reason": queued.reason,
        }

    with reported(settings_of(ctx).debug):
        pending = [describe(q) for q in inbox.pending(data_dir)]
        rejected = [describe(q) for q in inbox.rejected(data_dir)]
    if as_json:
        echo_json({"pending": pending, "rejected": rejected})
        return
    echo(f"pending: {len(pending)} (applied when the hub runs)")
    for row in pending:
        echo(f"  {Path(row['file']).name}: {'; '.join(row['ops'])}")
    echo(f"rejected: {len(rejected)} (in {inbox.rejected_dir(data_dir)})")
    for row in rejected:
        echo(f"  {Path(row['file']).name}: {'; '.join(row['ops'])}\n    why: {row['reason']}")


def restore(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="The snapshot (name or .json path) to rebuild the store from.")],
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask for confirmation.")] = False,
    as_json: JsonOption = False,
) -> None:
    """Replace the store with a snapshot (the hub must be stopped). The old store is kept aside."""
    from statehub.hub.restore import lock_for_restore
    from statehub.hub.restore import restore as restore_store
    from statehub.hub.state_files import find_snapshot, read

    settings = settings_of(ctx)
    with reported(settings.debug):
        with settings.client() as client:
            _refuse_remote(client, "restore")
        data_dir = settings.data_path()
        state = read(find_snapshot(data_dir, name))
        lock = lock_for_restore(data_dir)  # a running hub is refused before anything is asked
        try:
            question = f"Replace the store in {data_dir} with {name} ({len(state.values)} keys)?"
            if not yes and not typer.confirm(question):
                raise typer.Exit(1)
        except BaseException:
            lock.close()
            raise
        with working(f"rebuilding the store from {name} ({len(state.values)} keys)", quiet=as_json):
            done = restore_store(data_dir, state, lock)
    if as_json:
        moved = [str(path) for path in done.moved_aside]
        echo_json({"snapshot": name, "keys": done.keys, "rev": done.rev, "epoch": done.epoch, "moved_aside": moved})
        return
    echo(f"restored {done.keys} keys from {name} at revision {done.rev} (new epoch {done.epoch})")
    for path in done.moved_aside:
        echo(f"kept the old file as {path}")
