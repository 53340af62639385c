"""``statehub web``: serve the dashboard and the HTTP API; ``statehub web token``: manage access tokens.

``register(app)`` adds the ``web`` group to a Typer app.  Only typer is imported
at module level: the web stack (Starlette, uvicorn) is the optional extra
``statehub[web]`` and is imported when the server starts.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from statehub.cli.base import Settings, echo, echo_json, reported, settings_of

if TYPE_CHECKING:
    from statehub.web.access import Role
    from statehub.web.server_state import WebOptions

# A command's own --data-dir and --timeout, as serve, gui and sync-file take them: no envvar, since
# $STATEHUB_DATA_DIR is read by statehub's global option, which these must not override.
DataDir = Annotated[
    str | None,  # noqa: UP007 - typer reads the annotation at run time
    typer.Option(
        "--data-dir",
        help="The hub's data dir (default: statehub's --data-dir, else $STATEHUB_DATA_DIR, else the platform's).",
    ),
]
Timeout = Annotated[
    float | None,  # noqa: UP007
    typer.Option(help="Seconds to wait for the hub before treating it as down [default: 0.5].", min=0.01),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]


def _settings(ctx: typer.Context, data_dir: str | None = None, timeout: float | None = None) -> Settings:
    """statehub's global options, with this command's own --data-dir/--timeout where given."""
    return settings_of(ctx).with_own(data_dir, timeout)


def _cannot_start(exc: ImportError) -> Exception:
    from statehub import StatehubError

    return StatehubError(f"the web server cannot start: {exc}", hint="install it with `pip install statehub[web]`")


def register(app: typer.Typer) -> None:
    """Add ``web`` (serve) and ``web token create|list|revoke`` to ``app``."""
    web = typer.Typer(
        help="Serve the live dashboard and the HTTP API (docs/web.md, docs/http.md). Needs `pip install statehub[web]`.",
        invoke_without_command=True,
        no_args_is_help=False,
    )
    tokens = typer.Typer(
        help="Access tokens for `statehub web` (needed to listen beyond loopback).", no_args_is_help=True
    )
    web.add_typer(tokens, name="token")
    app.add_typer(web, name="web")

    @web.callback()
    def serve(
        ctx: typer.Context,
        host: Annotated[
            str,
            typer.Option(help="Address to listen on. Anything but loopback needs a token, or --read-only."),
        ] = "127.0.0.1",
        port: Annotated[
            int, typer.Option(help="TCP port (0: any free port; the banner names it).", min=0, max=65535)
        ] = 8080,
        read_only: Annotated[
            bool,
            typer.Option(
                "--read-only",
                help="Callers without a token may read but never write (a trusted network's wall display).",
            ),
        ] = False,
        require_token: Annotated[
            bool,
            typer.Option("--require-token", help="Callers without a token get nothing, even on loopback."),
        ] = False,
        heartbeat: Annotated[
            float, typer.Option(help="Seconds between heartbeats on each event stream.", min=0.1, max=60)
        ] = 5.0,
        replay: Annotated[
            int,
            typer.Option(
                help="Changes kept in memory for event streams that reconnect (Last-Event-ID).",
                min=10,
                max=1_000_000,
            ),
        ] = 10_000,
        stream_queue: Annotated[
            int,
            typer.Option(
                help="Messages an event stream may fall behind before it is dropped (it then resumes).",
                min=10,
                max=100_000,
            ),
        ] = 1_000,
        data_dir: DataDir = None,
        timeout: Timeout = None,
    ) -> None:
        """Serve the dashboard and the HTTP API until Ctrl-C or SIGTERM."""
        if ctx.invoked_subcommand is not None:
            return
        from statehub import InvalidRequest
        from statehub.web.access import is_loopback, read_tokens, tokens_path
        from statehub.web.hub_link import HubSettings

        own = _settings(ctx, data_dir, timeout)
        with reported(own.debug):
            directory = own.data_path()
            has_tokens = bool(read_tokens(tokens_path(directory)))
            anonymous: Role | None = "read" if read_only else "write"
            if require_token:
                anonymous = None
            if not is_loopback(host) and anonymous == "write":
                if not has_tokens:
                    raise InvalidRequest(
                        f"listening on {host} needs a token, and {tokens_path(directory)} holds none",
                        hint="create one with `statehub web token create NAME`, or add --read-only on a trusted network",
                    )
                anonymous = None
            if anonymous is None and not has_tokens:
                raise InvalidRequest(
                    "--require-token, but no token exists yet", hint="create one with `statehub web token create NAME`"
                )
            settings = HubSettings(str(directory), own.timeout, own.hub, own.hub_events, own.server_key)
            _serve(_options(settings, directory, host, port, anonymous, heartbeat, replay, stream_queue))

    @tokens.command("create")
    def create(
        ctx: typer.Context,
        name: Annotated[
            str,
            typer.Argument(help="Who holds it (shown as the writer of their changes), e.g. 'control-room'."),
        ],
        role: Annotated[
            str, typer.Option(help="read: look and follow; write: also change values.")
        ] = "write",
        data_dir: DataDir = None,
        as_json: JsonOption = False,
    ) -> None:
        """Make a token and print it once: only its SHA-256 is kept (web-tokens.json, mode 0600)."""
        from statehub import InvalidRequest
        from statehub.web.access import create_token

        settings = _settings(ctx, data_dir)
        with reported(settings.debug):
            if role not in ("read", "write"):
                raise InvalidRequest(f"invalid role {role!r}: read or write")
            token = create_token(settings.data_path(), name, role)  # type: ignore[arg-type]
        if as_json:
            echo_json({"name": name, "role": role, "token": token})
            return
        echo(token)
        echo(f"# the {role} token {name!r}; it is shown only now: keep it somewhere safe", err=True)

    @tokens.command("list")
    def list_tokens(
        ctx: typer.Context,
        data_dir: DataDir = None,
        as_json: JsonOption = False,
    ) -> None:
        """The tokens that exist (names and roles; the tokens themselves are not kept)."""
        from statehub import when_text
        from statehub.web.access import read_tokens, tokens_path

        settings = _settings(ctx, data_dir)
        with reported(settings.debug):
            records = read_tokens(tokens_path(settings.data_path()))
        if as_json:
            echo_json([{"name": r.name, "role": r.role, "created": r.created} for r in records])
            return
        for record in records:
            echo(f"{record.name:24} {record.role:6} created {when_text(record.created)}")
        if not records:
            echo("# no tokens; create one with `statehub web token create NAME`", err=True)

    @tokens.command("revoke")
    def revoke(
        ctx: typer.Context,
        name: Annotated[str, typer.Argument(help="The token's name.")],
        data_dir: DataDir = None,
    ) -> None:
        """Remove a token: requests carrying it are refused from now on."""
        from statehub import NotFound
        from statehub.web.access import revoke_token

        settings = _settings(ctx, data_dir)
        with reported(settings.debug):
            if not revoke_token(settings.data_path(), name):
                raise NotFound(f"no token named {name!r}", hint="see them with `statehub web token list`")
        echo(f"revoked {name!r}")


def _options(
    settings: Any,
    directory: Path,
    host: str,
    port: int,
    anonymous: Role | None,
    heartbeat: float,
    replay: int,
    queue: int,
) -> WebOptions:
    try:
        from statehub.web.server_state import WebOptions
    except ImportError as exc:  # Starlette is missing: the extra is not installed
        raise _cannot_start(exc) from None
    return WebOptions(settings, directory, host, port, anonymous, heartbeat, replay, queue)


def _serve(options: WebOptions) -> None:
    from statehub import StatehubError

    try:
        from statehub.web.serving import CannotListen, serve
    except ImportError as exc:
        raise _cannot_start(exc) from None
    try:
        serve(options)
    except CannotListen as exc:
        raise StatehubError(str(exc), hint="choose another with --port, or stop what uses it") from None
