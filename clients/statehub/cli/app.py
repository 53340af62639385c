"""The ``statehub`` typer app: the global options, the help, and every command group.

Each command module has ``register(app)``; this module calls them all.  Nothing
imports this module but ``statehub.cli.main`` (and tests), so there is no cycle.
"""

from __future__ import annotations

from typing import Annotated

import typer

from statehub.cli import (
    eds,
    follow_sites,
    gui,
    keys,
    schema,
    secrets,
    serve,
    states,
    sync_file,
    uplink,
    values,
    watch,
    web,
)
from statehub.cli.base import Settings, exit_codes_text
from statehub.cli.options import DataDirOption

app = typer.Typer(
    help="statehub: one hub owns your settings and live state; everything else asks it and subscribes.\n\n"
    "The options below may also follow the command (statehub status --timeout 5).",
    epilog=exit_codes_text(),
    no_args_is_help=True,
    add_completion=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)


def print_version(value: bool) -> None:
    if value:
        from statehub import __version__

        print(f"statehub {__version__}")
        raise typer.Exit()


@app.callback()
def main_options(
    ctx: typer.Context,
    data_dir: DataDirOption = None,
    timeout: Annotated[
        float, typer.Option(
            help="Seconds to wait for a running hub to take a request and answer it (a hub that is not "
            "running is said at once).",
            min=0.01,
        )
    ] = 0.5,
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks and debug logs.")] = False,
    version: Annotated[
        bool,
        typer.Option("--version", help="Print the version and exit.", is_eager=True, callback=print_version),
    ] = False,
    hub: Annotated[
        str | None,
        typer.Option(
            "--hub",
            help="A hub on another machine, tcp://HOST:PORT (env STATEHUB_HUB; else [hub] rpc in client.toml). "
            "Reached over CURVE: see `statehub keys init` and docs/security.md.",
        ),
    ] = None,
    hub_events: Annotated[
        str | None,
        typer.Option("--hub-events", help="Its change stream (env STATEHUB_HUB_EVENTS; default: the --hub port + 1)."),
    ] = None,
    server_key: Annotated[
        str | None,
        typer.Option(
            "--server-key",
            help="The remote hub's public key, or a file holding it (env STATEHUB_SERVER_KEY; "
            "the hub prints it with `statehub keys show-server`).",
        ),
    ] = None,
) -> None:
    ctx.obj = Settings(data_dir, timeout, debug, hub, hub_events, server_key)
    if debug:
        import logging

        logging.basicConfig(level=logging.DEBUG)


for group in (serve, values, watch, states, secrets, keys, schema, gui, sync_file, eds, web, uplink, follow_sites):
    group.register(app)


def run(args: list[str]) -> None:
    """Run the command line ``args``: global options may follow the command, negative numbers are values."""
    from statehub.cli.argv import normalised

    command = typer.main.get_command(app)
    command(args=normalised(command, args))
