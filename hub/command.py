"""The hub's own command line, ``python -m statehub.hub``; ``statehub serve`` (statehub.cli.serve) is the
same command on the CLI's framework.  Both end in ``run``."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

from statehub.hub import __version__
from statehub.hub.errors import StatehubError
from statehub.hub.paths import ENV_DATA_DIR, resolve_data_dir

if TYPE_CHECKING:
    from statehub.hub.server import HubConfig


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m statehub.hub",
        description="Run the statehub hub: the one process that owns the store. "
        "With no options it serves the platform's default data dir on loopback-only endpoints.",
    )
    p.add_argument("--data-dir", help=f"where the store, mirror and endpoints live (env {ENV_DATA_DIR})")
    p.add_argument("--rpc", help="request endpoint to bind (default: ipc:// in the data dir, or loopback tcp)")
    p.add_argument("--events", help="change-stream endpoint to bind (default: like --rpc)")
    p.add_argument("--tcp", action="store_true", help="bind tcp://127.0.0.1 on free ports instead of ipc://")
    p.add_argument("--heartbeat", type=float, default=1.0, metavar="SECONDS", help="heartbeat interval (default 1)")
    p.add_argument(
        "--mirror-interval",
        type=float,
        default=0.2,
        metavar="SECONDS",
        help="shortest time between two mirror rewrites (default 0.2)",
    )
    p.add_argument(
        "--history-keep",
        type=int,
        default=100_000,
        metavar="REVISIONS",
        help="keep history for this many most recent revisions (default 100000)",
    )
    p.add_argument(
        "--secrets-key",
        metavar="FILE",
        default=os.environ.get("STATEHUB_SECRETS_KEY") or None,
        help="the key file that encrypts secrets (env STATEHUB_SECRETS_KEY; default: keys/secrets.key "
        "in the data dir). Created on the first secret; back it up apart from the store.",
    )
    p.add_argument(
        "--listen",
        metavar="tcp://HOST:PORT",
        help="also serve remote clients on this endpoint (and the change stream on PORT+1), encrypted and "
        "authenticated with ZeroMQ CURVE: only client keys added with `statehub keys add` get in; "
        "refusals are logged. The hub's key pair is made in the data dir on first use. See docs/security.md",
    )
    p.add_argument(
        "--listen-events",
        metavar="tcp://HOST:PORT",
        help="the change-stream endpoint for remote clients (default: the --listen host, port + 1)",
    )
    p.add_argument(
        "--mirror-mode",
        type=mirror_mode,
        default=0o600,
        metavar="MODE",
        help="file mode of the mirror state.txt: 0600 (default, owner only), 0640 to let the data dir's "
        "group read it, 0644 for everyone on this machine",
    )
    p.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    p.add_argument("--log-json", action="store_true", help="log one JSON object per line")
    p.add_argument("--version", action="version", version=f"statehub {__version__}")
    return p


def mirror_mode(text: str) -> int:
    try:
        mode = int(text, 8)
    except ValueError:
        mode = -1
    if mode < 0 or mode & ~0o644 or mode & 0o600 != 0o600:
        raise argparse.ArgumentTypeError(f"{text!r} is not one of 0600, 0640, 0604, 0644 (an octal file mode)")
    return mode


class _JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return json.dumps(
            {
                "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + "Z",
                "level": record.levelname.lower(),
                "logger": record.name,
                "message": record.getMessage(),
            }
        )


def configure_logging(level: str, as_json: bool) -> None:
    handler = logging.StreamHandler(sys.stderr)
    if as_json:
        handler.setFormatter(_JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=level.upper(), handlers=[handler], force=True)


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    configure_logging(args.log_level, args.log_json)
    from statehub.hub.server import HubConfig

    if args.heartbeat <= 0 or args.mirror_interval < 0 or args.history_keep < 1:
        print("error: --heartbeat must be > 0, --mirror-interval >= 0, --history-keep >= 1", file=sys.stderr)
        return 2
    if args.listen_events and not args.listen:
        print("error: --listen-events needs --listen (the request endpoint for remote clients)", file=sys.stderr)
        return 2
    config = HubConfig(
        data_dir=Path(resolve_data_dir(args.data_dir)),
        rpc=args.rpc,
        events=args.events,
        tcp=args.tcp,
        heartbeat=args.heartbeat,
        mirror_interval=args.mirror_interval,
        history_keep=args.history_keep,
        secrets_key=Path(args.secrets_key).expanduser().absolute() if args.secrets_key else None,
        listen=args.listen,
        listen_events=args.listen_events,
        mirror_mode=args.mirror_mode,
    )
    try:
        run(config)
    except StatehubError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        return 1
    return 0


def run(config: HubConfig) -> None:
    """Serve ``config`` until SIGINT/SIGTERM, as a daemon: with owner-only files."""
    from statehub.hub.server import serve

    # Everything the hub creates (store, WAL, sockets, keys, snapshots) is owner-only unless it says
    # otherwise: a daemon's files must not depend on the umask of whoever started it.
    os.umask(0o077)
    serve(config)
