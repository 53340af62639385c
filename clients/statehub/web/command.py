"""``statehub web``: serve the dashboard and the HTTP API; ``statehub web token``: manage access tokens.

``register(app)`` adds the ``web`` group to a Typer app.  Only typer is imported
at module level: the web stack (Starlette, uvicorn) is the optional extra
``statehub[web]`` and is imported when the server starts.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

if TYPE_CHECKING:
    from statehub.web.access import Role
    from statehub.web.server_state import WebOptions

EXIT_ERROR, EXIT_BAD_INPUT = 1, 2

DataDir = Annotated[
    str | None,  # noqa: UP007 - typer reads the annotation at run time
    typer.Option(
        "--data-dir", envvar="STATEHUB_DATA_DIR", help="The hub's data dir (default: the platform's)."
    ),
]
Timeout = Annotated[
    float | None,  # noqa: UP007
    typer.Option(help="Seconds to wait for the hub before treating it as down [default: 0.5].", min=0.01),
]


def _fail(message: str, code: int, hint: str = "") -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    if hint:
        typer.echo(f"hint: {hint}", err=True)
    return typer.Exit(code)


def _parent(ctx: typer.Context, name: str, default: Any = None) -> Any:
    return getattr(ctx.obj, name, default)


def _data_dir(ctx: typer.Context, data_dir: str | None) -> Path:
    from statehub import resolve_data_dir

    return resolve_data_dir(data_dir or _parent(ctx, "data_dir"))


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
        from statehub.web.access import is_loopback, read_tokens, tokens_path
        from statehub.web.hub_link import HubSettings

        directory = _data_dir(ctx, data_dir)
        seconds = timeout if timeout is not None else float(_parent(ctx, "timeout", 0.5))
        has_tokens = bool(read_tokens(tokens_path(directory)))
        anonymous: Role | None = "read" if read_only else "write"
        if require_token:
            anonymous = None
        if not is_loopback(host) and anonymous == "write":
            if not has_tokens:
                raise _fail(
                    f"listening on {host} needs a token, and {tokens_path(directory)} holds none",
                    EXIT_BAD_INPUT,
                    "create one with `statehub web token create NAME`, or add --read-only on a trusted network",
                )
            anonymous = None
        if anonymous is None and not has_tokens:
            raise _fail(
                "--require-token, but no token exists yet",
                EXIT_BAD_INPUT,
                "create one with `statehub web token create NAME`",
            )
        settings = HubSettings(
            str(directory),
            seconds,
            _parent(ctx, "hub"),
            _parent(ctx, "hub_events"),
            _parent(ctx, "server_key"),
        )
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
        as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    ) -> None:
        """Make a token and print it once: only its SHA-256 is kept (web-tokens.json, mode 0600)."""
        from statehub import InvalidRequest
        from statehub.web.access import create_token

        if role not in ("read", "write"):
            raise _fail(f"invalid role {role!r}: read or write", EXIT_BAD_INPUT)
        try:
            token = create_token(_data_dir(ctx, data_dir), name, role)  # type: ignore[arg-type]
        except InvalidRequest as exc:
            raise _fail(exc.message, EXIT_BAD_INPUT) from None
        if as_json:
            typer.echo(json.dumps({"name": name, "role": role, "token": token}))
            return
        typer.echo(token)
        typer.echo(f"# the {role} token {name!r}; it is shown only now: keep it somewhere safe", err=True)

    @tokens.command("list")
    def list_tokens(
        ctx: typer.Context,
        data_dir: DataDir = None,
        as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    ) -> None:
        """The tokens that exist (names and roles; the tokens themselves are not kept)."""
        from datetime import UTC, datetime

        from statehub.web.access import read_tokens, tokens_path

        records = read_tokens(tokens_path(_data_dir(ctx, data_dir)))
        if as_json:
            typer.echo(json.dumps([{"name": r.name, "role": r.role, "created": r.created} for r in records]))
            return
        for record in records:
            created = datetime.fromtimestamp(record.created, UTC).strftime("%Y-%m-%d %H:%M:%SZ")
            typer.echo(f"{record.name:24} {record.role:6} created {created}")
        if not records:
            typer.echo("# no tokens; create one with `statehub web token create NAME`", err=True)

    @tokens.command("revoke")
    def revoke(
        ctx: typer.Context,
        name: Annotated[str, typer.Argument(help="The token's name.")],
        data_dir: DataDir = None,
    ) -> None:
        """Remove a token: requests carrying it are refused from now on."""
        from statehub.web.access import revoke_token

        if not revoke_token(_data_dir(ctx, data_dir), name):
            raise _fail(f"no token named {name!r}", 3, "see them with `statehub web token list`")
        typer.echo(f"revoked {name!r}")


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
        raise _fail(
            f"the web server cannot start: {exc}", EXIT_ERROR, "install it with `pip install statehub[web]`"
        ) from None
    return WebOptions(settings, directory, host, port, anonymous, heartbeat, replay, queue)


def _serve(options: WebOptions) -> None:
    try:
        from statehub.web.serving import CannotListen, serve
    except ImportError as exc:
        raise _fail(
            f"the web server cannot start: {exc}", EXIT_ERROR, "install it with `pip install statehub[web]`"
        ) from None
    try:
        serve(options)
    except CannotListen as exc:
        raise _fail(str(exc), EXIT_ERROR, "choose another with --port, or stop what uses it") from None
