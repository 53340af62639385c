"""``statehub secret``: set, reveal, list secrets and rotate their key.

A secret's value is read from a prompt or stdin, never from the command line
by default (argv shows in `ps` and shell history).  Only ``get --reveal``
prints a value.
"""

from __future__ import annotations

import json
import sys
from typing import TYPE_CHECKING, Annotated

import typer

from statehub.cli_options import JsonOption
from statehub.cli_options import settings_of as _settings

if TYPE_CHECKING:
    pass


secret_app = typer.Typer(
    help="Secrets: encrypted at rest, shown everywhere else as <secret>, revealed only on request.",
    no_args_is_help=True,
)


def register(app: typer.Typer) -> None:
    app.add_typer(secret_app, name="secret")



def read_secret_value(key: str, *, stdin_is_tty: bool) -> str:
    """The value typed at a prompt (twice, unechoed) or piped on stdin (one trailing newline dropped)."""
    from statehub.hub.errors import InvalidRequest

    if stdin_is_tty:
        import getpass

        value = getpass.getpass(f"value for secret {key}: ")
        if getpass.getpass("again: ") != value:
            raise InvalidRequest("the two values typed differ; nothing was stored")
    else:
        value = sys.stdin.read()
        value = value[:-1] if value.endswith("\n") else value
        value = value[:-1] if value.endswith("\r") else value
    if not value:
        raise InvalidRequest(f"empty value for secret {key!r}; type it at the prompt or pipe it on stdin")
    return value


@secret_app.command("set")
def secret_set(
    ctx: typer.Context,
    key: str,
    expect_rev: Annotated[
        int | None, typer.Option("--expect-rev", help="Only if the key is still at this revision (0: absent).")
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Store KEY as a secret; the value comes from a prompt, or from stdin when piped.

    Never queued while the hub is down: the inbox is plaintext.
    """
    from statehub.cli import _reported
    from statehub.hub.rules import check_key

    settings = _settings(ctx)
    with _reported(settings):
        check_key(key)
        value = read_secret_value(key, stdin_is_tty=sys.stdin.isatty())
        with settings.client() as client:
            committed = client.set_secret(key, value, expect=expect_rev)
    if as_json:
        typer.echo(json.dumps({"key": key, "rev": committed.rev, "secret": True}))
    else:
        typer.echo(f"secret {key} stored at revision {committed.rev}")


@secret_app.command("get")
def secret_get(
    ctx: typer.Context,
    key: str,
    reveal: Annotated[bool, typer.Option("--reveal", help="Print the plaintext value (the hub must be up).")] = False,
    as_json: JsonOption = False,
) -> None:
    """Print KEY's value: the placeholder, or with --reveal the plaintext."""
    from statehub.cli import EXIT_BAD_INPUT, _fail, _item_dict, _reported, _text

    settings = _settings(ctx)
    with _reported(settings), settings.client() as client:
        reading = client.get(key, reveal=reveal)
    if not reading.item.secret:
        _fail(f"{key!r} is not a secret; read it with `statehub get {key}`", EXIT_BAD_INPUT)
    if as_json:
        typer.echo(json.dumps(_item_dict(reading.item), ensure_ascii=False))
    else:
        typer.echo(_text(reading.value))
        if not reveal:
            typer.echo("(a secret: add --reveal to print its value)", err=True)


@secret_app.command("list")
def secret_list(
    ctx: typer.Context,
    prefix: Annotated[str, typer.Option("--prefix", help="Only keys starting with this.")] = "",
    as_json: JsonOption = False,
) -> None:
    """List the secrets (names and metadata, never values)."""
    from statehub.cli import _reported, _warn_if_mirror, _when

    settings = _settings(ctx)
    with _reported(settings), settings.client() as client:
        listing = client.list(prefix)
    _warn_if_mirror(listing.origin)
    secrets = [item for item in listing.items if item.secret]
    if as_json:
        rows = [
            {"key": i.key, "rev": i.rev, "time": i.time, "source": i.source, "user": i.user} for i in secrets
        ]
        typer.echo(json.dumps(rows, ensure_ascii=False))
        return
    for item in secrets:
        typer.echo(f"{item.key}  rev {item.rev}  {_when(item.time)}  by {item.source}/{item.user}")
    if not secrets:
        typer.echo("no secrets" + (f" under {prefix!r}" if prefix else ""), err=True)


@secret_app.command("rotate-key")
def secret_rotate_key(ctx: typer.Context, as_json: JsonOption = False) -> None:
    """Re-encrypt every secret (and its history) under a new key, in one transaction.

    Exports made with --include-secrets before the rotation can no longer be imported.
    """
    from statehub.cli import _reported

    settings = _settings(ctx)
    with _reported(settings), settings.client() as client:
        rotated = client.rotate_secrets_key()
    if as_json:
        typer.echo(json.dumps({"secrets": rotated.secrets, "versions": rotated.versions}))
    else:
        typer.echo(f"new key in use: re-encrypted {rotated.secrets} secrets and {rotated.versions} history values")
