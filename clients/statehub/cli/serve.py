"""``statehub serve``: run the hub, with the same options as ``python -m statehub.hub``.

The options are declared here for typer (so ``statehub serve --help`` looks
like every other command's help) and in the hub's own argparse parser
(statehub.hub.command) for ``python -m statehub.hub``; a test holds the two to
the same set of options.  Both end in the hub's ``run(HubConfig)``.
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from statehub.cli.base import reported, settings_of
from statehub.cli.options import OwnDataDirOption, add_command


class LogLevel(StrEnum):
    DEBUG = "debug"
    INFO = "info"
    WARNING = "warning"
    ERROR = "error"


def register(app: typer.Typer) -> None:
    add_command(app, serve)


def _positive(value: float) -> float:
    if value <= 0:
        raise typer.BadParameter(f"{value:g} is not a number of seconds above 0")
    return value


def _mirror_mode(text: str | int) -> int:
    from argparse import ArgumentTypeError

    from statehub.hub.command import mirror_mode

    if isinstance(text, int):
        return text  # the default, already a mode
    try:
        return mirror_mode(text)
    except ArgumentTypeError as exc:
        raise typer.BadParameter(str(exc)) from None


def _version(shown: bool) -> None:
    if shown:
        from statehub import __version__

        typer.echo(f"statehub {__version__}")
        raise typer.Exit()


def serve(
    ctx: typer.Context,
    data_dir: OwnDataDirOption = None,
    rpc: Annotated[
        str | None, typer.Option(help="Request endpoint to bind (default: ipc:// in the data dir, or loopback tcp).")
    ] = None,
    events: Annotated[str | None, typer.Option(help="Change-stream endpoint to bind (default: like --rpc).")] = None,
    tcp: Annotated[bool, typer.Option("--tcp", help="Bind tcp://127.0.0.1 on free ports instead of ipc://.")] = False,
    heartbeat: Annotated[
        float, typer.Option(metavar="SECONDS", help="Heartbeat interval.", callback=_positive)
    ] = 1.0,
    mirror_interval: Annotated[
        float, typer.Option(metavar="SECONDS", help="Shortest time between two mirror rewrites.", min=0.0)
    ] = 0.2,
    history_keep: Annotated[
        int, typer.Option(metavar="REVISIONS", help="Keep history for this many most recent revisions.", min=1)
    ] = 100_000,
    secrets_key: Annotated[
        str | None,
        typer.Option(
            metavar="FILE",
            envvar="STATEHUB_SECRETS_KEY",
            help="The key file that encrypts secrets (default: keys/secrets.key in the data dir). "
            "Created on the first secret; back it up apart from the store.",
        ),
    ] = None,
    listen: Annotated[
        str | None,
        typer.Option(
            metavar="tcp://HOST:PORT",
            help="Also serve remote clients on this endpoint (and the change stream on PORT+1), encrypted and "
            "authenticated with ZeroMQ CURVE: only client keys added with `statehub keys add` get in; "
            "refusals are logged. The hub's key pair is made in the data dir on first use. See docs/security.md.",
        ),
    ] = None,
    listen_events: Annotated[
        str | None,
        typer.Option(
            metavar="tcp://HOST:PORT",
            help="The change-stream endpoint for remote clients (default: the --listen host, port + 1).",
        ),
    ] = None,
    mirror_mode: Annotated[
        int,
        typer.Option(
            metavar="MODE",
            parser=_mirror_mode,
            help="File mode of the mirror state.txt: 0600 (owner only), 0640 to let the data dir's group "
            "read it, 0644 for everyone on this machine.",
            show_default="0600",
        ),
    ] = 0o600,
    log_level: Annotated[LogLevel, typer.Option(help="How much the hub logs.")] = LogLevel.INFO,
    log_json: Annotated[bool, typer.Option("--log-json", help="Log one JSON object per line.")] = False,
    version: Annotated[
        bool, typer.Option("--version", help="Print the version and exit.", callback=_version, is_eager=True)
    ] = False,
) -> None:
    """Run the hub: the one process that owns the store, until SIGINT or SIGTERM.

    With no options it serves the platform's default data dir on loopback-only endpoints.
    """
    from statehub import InvalidRequest
    from statehub.hub.command import configure_logging, run
    from statehub.hub.server import HubConfig

    settings = settings_of(ctx).with_own(data_dir, None)
    with reported(settings.debug):
        if listen_events and not listen:
            raise InvalidRequest("--listen-events needs --listen (the request endpoint for remote clients)")
        configure_logging(log_level.value, log_json)
        run(
            HubConfig(
                data_dir=settings.data_path(),
                rpc=rpc,
                events=events,
                tcp=tcp,
                heartbeat=heartbeat,
                mirror_interval=mirror_interval,
                history_keep=history_keep,
                secrets_key=Path(secrets_key).expanduser().absolute() if secrets_key else None,
                listen=listen,
                listen_events=listen_events,
                mirror_mode=mirror_mode,
            )
        )
