"""``statehub secret``: set, reveal, list secrets and rotate their key.

A secret's value is read from a prompt or stdin, never from the command line
by default (argv shows in `ps` and shell history).  Only ``get --reveal``
prints a value.
"""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from statehub.cli.base import (
    echo,
    echo_json,
    item_dict,
    reported,
    settings_of,
    warn_if_mirror,
    working,
    writing,
)
from statehub.cli.options import JsonOption, PrefixOption, add_command

secret_app = typer.Typer(
    help="Secrets: encrypted at rest, shown everywhere else as <secret>, revealed only on request.",
    no_args_is_help=True,
)


def register(app: typer.Typer) -> None:
    app.add_typer(secret_app, name="secret")
    add_command(secret_app, secret_set, "set")
    add_command(secret_app, secret_get, "get")
    add_command(secret_app, secret_list, "list")
    add_command(secret_app, secret_rotate_key, "rotate-key")


def read_secret_value(key: str, *, stdin_is_tty: bool) -> str:
    """The value typed at a prompt (twice, unechoed) or piped on stdin (one trailing newline dropped)."""
    from statehub import InvalidRequest

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
    from statehub import check_key

    settings = settings_of(ctx)
    with reported(settings.debug):
        check_key(key)
        value = read_secret_value(key, stdin_is_tty=sys.stdin.isatty())
        with settings.client() as client, writing():
            committed = client.set_secret(key, value, expect=expect_rev)
    if as_json:
        echo_json({"key": key, "rev": committed.rev, "secret": True})
    else:
        echo(f"secret {key} stored at revision {committed.rev}")


def secret_get(
    ctx: typer.Context,
    key: str,
    reveal: Annotated[bool, typer.Option("--reveal", help="Print the plaintext value (the hub must be up).")] = False,
    as_json: JsonOption = False,
) -> None:
    """Print KEY's value: the placeholder, or with --reveal the plaintext."""
    from statehub import InvalidRequest, value_text

    settings = settings_of(ctx)
    with reported(settings.debug), settings.client() as client:
        reading = client.get(key, reveal=reveal)
        if not reading.item.secret:
            raise InvalidRequest(f"{key!r} is not a secret; read it with `statehub get {key}`")
    if as_json:
        echo_json(item_dict(reading.item))
    else:
        echo(value_text(reading.value))
        if not reveal:
            echo("(a secret: add --reveal to print its value)", err=True)


def secret_list(ctx: typer.Context, prefix: PrefixOption = "", as_json: JsonOption = False) -> None:
    """List the secrets (names and metadata, never values)."""
    from statehub import when_text

    settings = settings_of(ctx)
    with reported(settings.debug), settings.client() as client:
        listing = client.list(prefix)
    warn_if_mirror(listing.origin)
    secrets = [item for item in listing.items if item.secret]
    if as_json:
        rows = [
            {"key": i.key, "rev": i.rev, "time": i.time, "source": i.source, "user": i.user} for i in secrets
        ]
        echo_json(rows)
        return
    for item in secrets:
        echo(f"{item.key}  rev {item.rev}  {when_text(item.time)}  by {item.source}/{item.user}")
    if not secrets:
        echo("no secrets" + (f" under {prefix!r}" if prefix else ""), err=True)


def secret_rotate_key(ctx: typer.Context, as_json: JsonOption = False) -> None:
    """Re-encrypt every secret (and its history) under a new key, in one transaction.

    Exports made with --include-secrets before the rotation can no longer be imported.
    """
    settings = settings_of(ctx)
    with reported(settings.debug), settings.client() as client, working("re-encrypting every secret", quiet=as_json):
        rotated = client.rotate_secrets_key()
    if as_json:
        echo_json({"secrets": rotated.secrets, "versions": rotated.versions})
    else:
        echo(f"new key in use: re-encrypted {rotated.secrets} secrets and {rotated.versions} history values")
