"""CLI commands for whole states: snapshots, rollback, export, import, the queue, restore.

Only typer is imported at module level; the rest inside each command, so that
``statehub get`` does not pay for these.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from statehub.cli_options import JsonOption
from statehub.cli_options import settings_of as _settings

if TYPE_CHECKING:
    from statehub.hub.protocol import Op

DryRun = Annotated[bool, typer.Option("--dry-run", help="Print the changes (old -> new) and apply nothing.")]
PrefixOption = Annotated[str, typer.Option("--prefix", help="Only keys starting with this.")]

snapshot_app = typer.Typer(help="Create, list and show snapshots (plaintext JSON files in the data dir).", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    app.add_typer(snapshot_app, name="snapshot")
    app.command()(rollback)
    app.command("export")(export_)
    app.command("import")(import_)
    app.command()(queue)
    app.command()(restore)



@snapshot_app.command("create")
def snapshot_create(
    ctx: typer.Context,
    name: Annotated[str | None, typer.Option(help="Keep it under this name (kept until you delete it).")] = None,
    keep: Annotated[int, typer.Option(help="Unnamed snapshots to keep (the oldest go).", min=1)] = 20,
    as_json: JsonOption = False,
) -> None:
    """Save the hub's current state as a snapshot."""
    from statehub.cli import _reported
    from statehub.hub.state_files import check_snapshot_name, save_snapshot, state_from_items

    settings = _settings(ctx)
    with _reported(settings), settings.client() as client:
        if name:
            check_snapshot_name(name)
        items = client.snapshot()
        path = save_snapshot(client.data_dir, state_from_items(items.items, items.rev, items.epoch, name or ""), keep)
    if as_json:
        typer.echo(json.dumps({"path": str(path), "name": path.stem, "rev": items.rev, "keys": len(items.items)}))
    else:
        typer.echo(f"snapshot {path.stem}: {len(items.items)} keys at revision {items.rev} ({path})")


@snapshot_app.command("list")
def snapshot_list(ctx: typer.Context, as_json: JsonOption = False) -> None:
    """List snapshots, oldest first."""
    from statehub.hub.mirror import iso_time
    from statehub.hub.paths import resolve_data_dir
    from statehub.hub.state_files import list_snapshots

    snapshots = list_snapshots(resolve_data_dir(_settings(ctx).data_dir))
    if as_json:
        rows = [{"name": n, "rev": s.rev, "epoch": s.epoch, "created": iso_time(s.created), "keys": len(s.values)} for n, s in snapshots]
        typer.echo(json.dumps(rows))
        return
    if not snapshots:
        typer.echo("no snapshots yet; make one with `statehub snapshot create`")
    for name, state in snapshots:
        typer.echo(f"{name:<40} revision {state.rev:<8} {len(state.values):>6} keys  {iso_time(state.created)[:19]}Z")


@snapshot_app.command("show")
def snapshot_show(ctx: typer.Context, name: str) -> None:
    """Print a snapshot file."""
    from statehub.cli import _reported
    from statehub.hub.paths import resolve_data_dir
    from statehub.hub.state_files import find_snapshot

    settings = _settings(ctx)
    with _reported(settings):
        typer.echo(find_snapshot(resolve_data_dir(settings.data_dir), name).read_text(encoding="utf-8"), nl=False)


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
    from statehub.cli import EXIT_BAD_INPUT, _fail, _reported
    from statehub.hub.paths import resolve_data_dir
    from statehub.hub.state_files import find_snapshot, read

    settings = _settings(ctx)
    if (name is None) == (to_rev is None):
        _fail("give a snapshot NAME or --to-rev R (one of them)", EXIT_BAD_INPUT)
    with _reported(settings), settings.client(source="rollback") as client:
        if name is not None:
            target = read(find_snapshot(resolve_data_dir(settings.data_dir), name)).values
            what = f"snapshot {name}"
        else:
            assert to_rev is not None
            target = {i.key: i.value for i in client.snapshot(prefix, at_rev=to_rev).items}
            what = f"revision {to_rev}"
        target = {k: v for k, v in target.items() if k.startswith(prefix)}
        _apply_state(client, target, prefix=prefix, replace=True, dry_run=dry_run, what=what, as_json=as_json)


def _apply_state(
    client: Any,
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
    skipped = placeholders_skipped(current, target, sealed)
    if skipped:
        typer.echo(
            f"note: {len(skipped)} keys hold a secret's placeholder and are no secret here, so they were left "
            f"as they are (first: {skipped[0]}); set them with `statehub secret set KEY`",
            err=True,
        )
    if dry_run or not ops:
        _report(what, ops, lines, None, dry_run, as_json)
        return
    committed = client.txn(ops)
    _report(what, ops, lines, committed.rev, dry_run, as_json)


def _report(what: str, ops: list[Op], lines: list[str], rev: int | None, dry_run: bool, as_json: bool) -> None:
    if as_json:
        typer.echo(json.dumps({"target": what, "changes": lines, "applied": rev is not None, "rev": rev, "dry_run": dry_run}))
        return
    for line in lines:
        typer.echo(line)
    if not ops:
        typer.echo(f"nothing to change: the state already matches {what}")
    elif rev is None:
        typer.echo(f"dry run: {len(ops)} keys would change to match {what}; nothing applied")
    else:
        typer.echo(f"{len(ops)} keys changed to match {what} at revision {rev}")


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
) -> None:
    """Write the current state as a plaintext file that `statehub import` reads.

    Secrets show as <secret> unless --include-secrets (encrypted, never in plaintext).
    """
    from statehub.cli import _reported
    from statehub.hub.atomic_file import write_atomically
    from statehub.hub.state_files import format_of, render, state_from_items

    settings = _settings(ctx)
    with _reported(settings), settings.client() as client:
        chosen = format_of(Path(f"x.{fmt}"))
        items = client.snapshot(prefix, sealed=include_secrets)
        data = render(state_from_items(items.items, items.rev, items.epoch), chosen)
        if output is None:
            sys.stdout.write(data.decode())
        else:
            write_atomically(output, data, mode=0o600)
            typer.echo(f"exported {len(items.items)} keys at revision {items.rev} to {output}", err=True)


def import_(
    ctx: typer.Context,
    file: Annotated[Path, typer.Argument(help="A .json or .toml file in the export format.")],
    fmt: Annotated[str | None, typer.Option("--format", help="json or toml (default: from the file name).")] = None,
    replace: Annotated[bool, typer.Option("--replace", help="Also unset keys (under --prefix) that the file lacks.")] = False,
    prefix: PrefixOption = "",
    dry_run: DryRun = False,
    as_json: JsonOption = False,
) -> None:
    """Apply a plaintext file: validated first, then all of it as one txn, or nothing."""
    from statehub.cli import _reported
    from statehub.hub.state_files import read

    settings = _settings(ctx)
    with _reported(settings):
        state = read(file, fmt)
        target = {k: v for k, v in state.values.items() if k.startswith(prefix)}
        with settings.client(source="import") as client:
            _apply_state(
                client,
                target,
                prefix=prefix,
                replace=replace,
                dry_run=dry_run,
                what=str(file),
                as_json=as_json,
                sealed=state.sealed,
            )


def queue(ctx: typer.Context, as_json: JsonOption = False) -> None:
    """List writes queued while the hub was down (pending) and those it refused (rejected)."""
    from statehub.hub import inbox
    from statehub.hub.paths import resolve_data_dir
    from statehub.hub.protocol import write_ops

    data_dir = resolve_data_dir(_settings(ctx).data_dir)

    def describe(queued: inbox.QueuedWrite) -> dict[str, Any]:
        ops = write_ops(queued.write) if queued.write is not None else []
        return {
            "file": str(queued.path),
            "keys": [op.key for op in ops],
            "ops": [f"{op.op} {op.key}" + (f" = {json.dumps(op.value)}" if op.op == "set" else "") for op in ops],
            "reason": queued.reason,
        }

    pending = [describe(q) for q in inbox.pending(data_dir)]
    rejected = [describe(q) for q in inbox.rejected(data_dir)]
    if as_json:
        typer.echo(json.dumps({"pending": pending, "rejected": rejected}))
        return
    typer.echo(f"pending: {len(pending)} (applied when the hub runs)")
    for row in pending:
        typer.echo(f"  {Path(row['file']).name}: {'; '.join(row['ops'])}")
    typer.echo(f"rejected: {len(rejected)} (in {inbox.rejected_dir(data_dir)})")
    for row in rejected:
        typer.echo(f"  {Path(row['file']).name}: {'; '.join(row['ops'])}\n    why: {row['reason']}")


def restore(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="The snapshot (name or .json path) to rebuild the store from.")],
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask for confirmation.")] = False,
) -> None:
    """Replace the store with a snapshot (the hub must be stopped). The old store is kept aside."""
    from statehub.cli import _reported
    from statehub.hub.paths import resolve_data_dir
    from statehub.hub.restore import restore as restore_store
    from statehub.hub.state_files import find_snapshot, read

    settings = _settings(ctx)
    with _reported(settings):
        data_dir = resolve_data_dir(settings.data_dir)
        state = read(find_snapshot(data_dir, name))
        if not yes and not typer.confirm(f"Replace the store in {data_dir} with {name} ({len(state.values)} keys)?"):
            raise typer.Exit(1)
        done = restore_store(data_dir, state)
    typer.echo(f"restored {done.keys} keys from {name} at revision {done.rev} (new epoch {done.epoch})")
    for path in done.moved_aside:
        typer.echo(f"kept the old file as {path}")
