"""``statehub keys``: the CURVE keys of network access (docs/security.md, "Network access").

On the hub's machine, as the hub's user: ``show-server`` prints the key clients
need, ``add``/``list``/``remove`` edit the allow-list in the data dir (the hub
reads it on every new connection, so no restart).  On a client machine:
``init`` makes this user's key pair and prints the public half to allow-list.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from statehub.cli.base import echo, echo_json, reported, settings_of
from statehub.cli.options import JsonOption, add_command

if TYPE_CHECKING:
    from statehub.hub.curve import AllowList

keys_app = typer.Typer(
    help="CURVE keys for remote clients: the hub's key, its allow-list, and this client's key pair.",
    no_args_is_help=True,
)


def register(app: typer.Typer) -> None:
    app.add_typer(keys_app, name="keys")
    add_command(keys_app, init, "init")
    add_command(keys_app, show_server, "show-server")
    add_command(keys_app, add, "add")
    add_command(keys_app, list_, "list")
    add_command(keys_app, remove, "remove")


@contextlib.contextmanager
def _files(ctx: typer.Context) -> Iterator[None]:
    """Report errors as every command does; a key file we may not touch says whose it is."""
    from statehub import StatehubError

    with reported(settings_of(ctx).debug):
        try:
            yield
        except OSError as exc:
            raise StatehubError(
                f"{exc.filename or 'a key file'}: {exc.strerror or exc}",
                hint="run key commands as the user the files belong to",
            ) from exc


def _allow_list(ctx: typer.Context) -> AllowList:
    from statehub import Layout
    from statehub.hub.curve import AllowList, allow_list_dir

    return AllowList(allow_list_dir(Layout(settings_of(ctx).data_path())))


def init(ctx: typer.Context, as_json: JsonOption = False) -> None:
    """Make this client's key pair (once) and print its public key, for the hub's allow-list."""
    from statehub import client_key_dir, make_client_keys

    with _files(ctx):
        keys, created = make_client_keys()
    public = keys.public.decode()
    if as_json:
        echo_json({"public_key": public, "folder": str(client_key_dir()), "created": created})
        return
    echo(public)
    what = "made a new key pair" if created else "this client already has a key pair"
    echo(
        f"# {what} in {client_key_dir()} (the secret key never leaves it). On the hub, as its user:\n"
        f"#   statehub keys add NAME '{public}'",
        err=True,
    )


def show_server(ctx: typer.Context, as_json: JsonOption = False) -> None:
    """Print the hub's public key (made on first use), for clients' --server-key."""
    from statehub import Layout
    from statehub.hub.curve import curve_dir, server_keypair

    layout = Layout(settings_of(ctx).data_path())
    with _files(ctx):
        keys, created = server_keypair(layout)
    public = keys.public.decode()
    if as_json:
        echo_json({"public_key": public, "folder": str(curve_dir(layout)), "created": created})
        return
    echo(public)
    if created:
        echo(f"# made the hub's key pair in {curve_dir(layout)}", err=True)


def add(
    ctx: typer.Context,
    name: Annotated[
        str, typer.Argument(help="A name for the client, e.g. ana-laptop (shown in the hub's log).")
    ],
    key: Annotated[str, typer.Argument(help="Its public key (quote it: 'KEY'), or a file holding it.")],
) -> None:
    """Allow a client's public key; it takes effect on its next connection."""
    from statehub import InvalidRequest
    from statehub.hub.curve import check_public_key, read_public_key

    allow = _allow_list(ctx)
    with _files(ctx):
        try:
            public = check_public_key(key)
        except InvalidRequest:
            if not Path(key).expanduser().is_file():
                raise
            public = read_public_key(Path(key).expanduser())
        allow.add(name, public)
    echo(f"allowed {name!r} ({public.decode()}); no restart needed")


def list_(ctx: typer.Context, as_json: JsonOption = False) -> None:
    """List the allowed client keys."""
    allow = _allow_list(ctx)
    with _files(ctx):
        entries = allow.entries()
        problems = allow.problems()
    for problem in problems:
        echo(f"warning: ignored {problem}", err=True)
    if as_json:
        echo_json([{"name": e.name, "public_key": e.public} for e in entries])
        return
    if not entries:
        echo(
            f"no client keys allowed yet (in {allow.folder}); add one with `statehub keys add NAME KEY`"
        )
    for entry in entries:
        echo(f"{entry.name:<24} {entry.public}")


def remove(ctx: typer.Context, name: str) -> None:
    """Stop allowing a client: its next connection is refused (open ones last until they close)."""
    from statehub import NotFound

    allow = _allow_list(ctx)
    with _files(ctx):
        if not allow.remove(name):
            raise NotFound(f"no allowed key named {name!r}", hint="see `statehub keys list`")
    echo(f"removed {name!r}; its next connection is refused (restart the hub to cut open ones)")
