"""``statehub keys``: the CURVE keys of network access (docs/security.md, "Network access").

On the hub's machine, as the hub's user: ``show-server`` prints the key clients
need, ``add``/``list``/``remove`` edit the allow-list in the data dir (the hub
reads it on every new connection, so no restart).  On a client machine:
``init`` makes this user's key pair and prints the public half to allow-list.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from statehub.cli_options import JsonOption
from statehub.cli_options import settings_of as _settings

if TYPE_CHECKING:
    from statehub.cli import Settings


keys_app = typer.Typer(
    help="CURVE keys for remote clients: the hub's key, its allow-list, and this client's key pair.",
    no_args_is_help=True,
)


def register(app: typer.Typer) -> None:
    app.add_typer(keys_app, name="keys")



@contextlib.contextmanager
def _files(settings: Settings) -> Iterator[None]:
    """Report statehub errors as the CLI does, and a file we may not touch as an error, not a traceback."""
    from statehub.cli import _reported
    from statehub.hub.errors import StatehubError

    with _reported(settings):
        try:
            yield
        except OSError as exc:
            raise StatehubError(
                f"{exc.filename or 'a key file'}: {exc.strerror or exc} (run key commands as the user the files belong to)"
            ) from exc


def _data_dir(ctx: typer.Context) -> Path:
    from statehub.hub.paths import resolve_data_dir

    return resolve_data_dir(_settings(ctx).data_dir)


@keys_app.command("init")
def init(ctx: typer.Context, as_json: JsonOption = False) -> None:
    """Make this client's key pair (once) and print its public key, for the hub's allow-list."""
    from statehub.hub.curve import load_or_create_keypair
    from statehub.remote import CLIENT_KEY_STEM, client_key_dir

    with _files(_settings(ctx)):
        keys, created = load_or_create_keypair(client_key_dir(), CLIENT_KEY_STEM)
    public = keys.public.decode()
    if as_json:
        typer.echo(json.dumps({"public_key": public, "folder": str(client_key_dir()), "created": created}))
        return
    typer.echo(public)
    what = "made a new key pair" if created else "this client already has a key pair"
    typer.echo(
        f"# {what} in {client_key_dir()} (the secret key never leaves it). On the hub, as its user:\n"
        f"#   statehub keys add NAME '{public}'",
        err=True,
    )


@keys_app.command("show-server")
def show_server(ctx: typer.Context, as_json: JsonOption = False) -> None:
    """Print the hub's public key (made on first use), for clients' --server-key."""
    from statehub.hub.curve import curve_dir, server_keypair
    from statehub.hub.paths import Layout

    layout = Layout(_data_dir(ctx))
    with _files(_settings(ctx)):
        keys, created = server_keypair(layout)
    public = keys.public.decode()
    if as_json:
        typer.echo(json.dumps({"public_key": public, "folder": str(curve_dir(layout)), "created": created}))
        return
    typer.echo(public)
    if created:
        typer.echo(f"# made the hub's key pair in {curve_dir(layout)}", err=True)


@keys_app.command("add")
def add(
    ctx: typer.Context,
    name: Annotated[
        str, typer.Argument(help="A name for the client, e.g. ana-laptop (shown in the hub's log).")
    ],
    key: Annotated[str, typer.Argument(help="Its public key (quote it: 'KEY'), or a file holding it.")],
) -> None:
    """Allow a client's public key; it takes effect on its next connection."""
    from statehub.hub.curve import AllowList, allow_list_dir, check_public_key, read_public_key
    from statehub.hub.errors import InvalidRequest
    from statehub.hub.paths import Layout

    allow = AllowList(allow_list_dir(Layout(_data_dir(ctx))))
    with _files(_settings(ctx)):
        try:
            public = check_public_key(key)
        except InvalidRequest:
            if not Path(key).expanduser().is_file():
                raise
            public = read_public_key(Path(key).expanduser())
        allow.add(name, public)
    typer.echo(f"allowed {name!r} ({public.decode()}); no restart needed")


@keys_app.command("list")
def list_(ctx: typer.Context, as_json: JsonOption = False) -> None:
    """List the allowed client keys."""
    from statehub.hub.curve import AllowList, allow_list_dir
    from statehub.hub.paths import Layout

    allow = AllowList(allow_list_dir(Layout(_data_dir(ctx))))
    entries = allow.entries()
    for problem in allow.problems():
        typer.echo(f"warning: ignored {problem}", err=True)
    if as_json:
        typer.echo(json.dumps([{"name": e.name, "public_key": e.public} for e in entries]))
        return
    if not entries:
        typer.echo(
            f"no client keys allowed yet (in {allow.folder}); add one with `statehub keys add NAME KEY`"
        )
    for entry in entries:
        typer.echo(f"{entry.name:<24} {entry.public}")


@keys_app.command("remove")
def remove(ctx: typer.Context, name: str) -> None:
    """Stop allowing a client: its next connection is refused (open ones last until they close)."""
    from statehub.cli import EXIT_NOT_FOUND, _fail
    from statehub.hub.curve import AllowList, allow_list_dir
    from statehub.hub.paths import Layout

    allow = AllowList(allow_list_dir(Layout(_data_dir(ctx))))
    with _files(_settings(ctx)):
        removed = allow.remove(name)
    if not removed:
        _fail(f"no allowed key named {name!r}", EXIT_NOT_FOUND, "see `statehub keys list`")
    typer.echo(f"removed {name!r}; its next connection is refused (restart the hub to cut open ones)")
