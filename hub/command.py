"""The hub's command line: ``python -m hub`` and ``statehub serve`` both land here."""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path

from hub import __version__
from hub.errors import StatehubError
from hub.paths import ENV_DATA_DIR, resolve_data_dir


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="statehub serve",
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
    p.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    p.add_argument("--log-json", action="store_true", help="log one JSON object per line")
    p.add_argument("--version", action="version", version=f"statehub {__version__}")
    return p


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
    from hub.server import HubConfig, serve

    if args.heartbeat <= 0 or args.mirror_interval < 0 or args.history_keep < 1:
        print("error: --heartbeat must be > 0, --mirror-interval >= 0, --history-keep >= 1", file=sys.stderr)
        return 2
    config = HubConfig(
        data_dir=Path(resolve_data_dir(args.data_dir)),
        rpc=args.rpc,
        events=args.events,
        tcp=args.tcp,
        heartbeat=args.heartbeat,
        mirror_interval=args.mirror_interval,
        history_keep=args.history_keep,
    )
    try:
        serve(config)
    except StatehubError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        return 1
    return 0
