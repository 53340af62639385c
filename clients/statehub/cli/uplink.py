"""``statehub uplink``: forward this site's changes to NATS JetStream or MQTT (the extra ``statehub[sites]``).

The sites package is imported only when the command runs, so the CLI starts
as fast without the extra as with it, and says how to install it when missing.
"""

from __future__ import annotations

import os
import time
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from statehub.cli.base import echo, echo_json, reported, settings_of, show_logs
from statehub.cli.options import JsonOption, OwnDataDirOption, OwnTimeoutOption, add_command

if TYPE_CHECKING:
    from statehub import Client
    from statehub.cli.base import Settings
    from statehub.sites.state import Status


def register(app: typer.Typer) -> None:
    add_command(app, uplink)


def uplink(
    ctx: typer.Context,
    url: Annotated[
        str | None,
        typer.Argument(
            help="nats://HOST:PORT (JetStream, for a central hub) or mqtt://HOST:PORT (the plant's tools)."
        ),
    ] = None,
    site: Annotated[str, typer.Option("--site", help="This site's name: one key segment, e.g. north.")] = "",
    prefix: Annotated[str, typer.Option("--prefix", help="Forward only keys starting with this.")] = "",
    state_dir: Annotated[
        Path | None,
        typer.Option(
            "--state-dir",
            help="Where the cursor and status live [default: DATA_DIR/uplink, or ~/.local/state/statehub/uplink "
            "when the data dir is not writable].",
        ),
    ] = None,
    fleet: Annotated[
        bool,
        typer.Option("--fleet/--no-fleet", help="Also write the centre's fleet. keys into this hub (NATS)."),
    ] = True,
    heartbeat: Annotated[
        float,
        typer.Option(
            "--heartbeat",
            metavar="SECONDS",
            help="Say every SECONDS that this uplink is linked, with its cursor, even when nothing changes "
            "(NATS: in statehub.link.SITE at the centre; MQTT: on statehub/SITE/$heartbeat).",
        ),
    ] = 30.0,
    status: Annotated[
        bool, typer.Option("--status", help="Show the running uplink's cursor, lag and link, then exit.")
    ] = False,
    as_json: JsonOption = False,
    data_dir: OwnDataDirOption = None,
    timeout: OwnTimeoutOption = None,
) -> None:
    """Forward every committed change of this site's hub, in order, resuming from a durable cursor.

    To NATS: one JetStream message per changed key on statehub.site.SITE.KEY, for
    `statehub follow-sites` at the centre. To MQTT: each key as a retained message
    on statehub/SITE/KEY/PATH, with statehub/SITE/$state online/offline. Secrets
    are never forwarded. See docs/sites.md.
    """
    from statehub import InvalidRequest

    settings = settings_of(ctx).with_own(data_dir, timeout)
    with reported(settings.debug):
        scheme = _scheme(url, status)
        _check_site(site, needs_broker=not status)
        folder = state_dir or _default_state_dir(settings)
        if status:
            _show_status(folder, site, scheme, as_json)
            return
        assert url is not None and scheme is not None
        if not heartbeat > 0:
            raise InvalidRequest(
                f"invalid --heartbeat {heartbeat:g}: give the seconds between heartbeats, more than 0 (e.g. 30)"
            )
        _run(settings, url, scheme, site, prefix, folder, fleet, heartbeat)


def _scheme(url: str | None, status: bool) -> str | None:
    from statehub import InvalidRequest

    if url is None:
        if status:
            return None
        raise InvalidRequest("give the broker to forward to: nats://HOST:PORT or mqtt://HOST:PORT")
    scheme = url.partition("://")[0]
    if scheme not in ("nats", "mqtt"):
        raise InvalidRequest(
            f"cannot forward to {url!r}: the uplink speaks nats://HOST:PORT and mqtt://HOST:PORT"
        )
    return scheme


def _check_site(site: str, *, needs_broker: bool) -> None:
    from statehub import InvalidRequest

    if not site:
        raise InvalidRequest("name this site with --site NAME (one key segment, e.g. --site north)")
    if needs_broker:
        require_sites_extra("uplink")
    from statehub.sites.wire import check_site

    check_site(site)


def require_sites_extra(command: str) -> None:
    """Raise a clear error when nats-py or paho-mqtt is missing."""
    from statehub import StatehubError

    try:
        import nats  # noqa: F401
        import paho.mqtt  # noqa: F401
    except ImportError as exc:
        raise StatehubError(
            f"`statehub {command}` needs the sites extra ({exc.name} is not installed)",
            hint="pip install 'statehub[sites]'",
        ) from None


def _default_state_dir(settings: Settings) -> Path:
    from statehub.sites.state import default_state_dir

    return default_state_dir(settings.data_path())


LINK_TIMEOUT = 5.0  # a link process waits this long for a busy hub: it has nobody waiting on it


def make_client_factory(settings: Settings) -> Any:
    """Clients of the hub these settings name, one per source, that never fall back to the mirror."""
    patient = replace(settings, timeout=max(settings.timeout, LINK_TIMEOUT))

    def make(source: str) -> Client:
        return patient.client(source, fallback=False)

    return make


def _run(
    settings: Settings,
    url: str,
    scheme: str,
    site: str,
    prefix: str,
    folder: Path,
    fleet: bool,
    heartbeat: float,
) -> None:
    from statehub.sites.runner import run_until_signalled

    show_logs()
    make = make_client_factory(settings)
    if scheme == "nats":
        from statehub.sites.uplink_nats import UplinkConfig, run_uplink

        config = UplinkConfig(
            url=url,
            site=site,
            make_client=make,
            state_dir=folder,
            prefix=prefix,
            fleet=fleet,
            heartbeat=heartbeat,
        )
        run_until_signalled(lambda stop: run_uplink(config, stop))
    else:
        from statehub.sites.uplink_mqtt import MqttConfig, run_mqtt_uplink

        mqtt = MqttConfig(
            url=url, site=site, make_client=make, state_dir=folder, prefix=prefix, heartbeat=heartbeat
        )
        run_until_signalled(lambda stop: run_mqtt_uplink(mqtt, stop))


def _show_status(folder: Path, site: str, scheme: str | None, as_json: bool) -> None:
    from statehub import NotFound
    from statehub.sites.state import load_status, state_name, status_dict, status_path

    found = [
        (status, _is_running(status.pid))
        for kind in ((scheme,) if scheme else ("nats", "mqtt"))
        if (status := load_status(status_path(folder, state_name(kind, site)))) is not None
    ]
    if not found:
        raise NotFound(
            f"no uplink status for site {site!r} in {folder}",
            hint="start it with `statehub uplink nats://HOST:PORT --site NAME`, or give its --state-dir",
        )
    if as_json:
        data = [status_dict(status, running=running) for status, running in found]
        echo_json(data[0] if len(data) == 1 else data)
        return
    for status, running in found:
        _print_status(status, running)


def _print_status(status: Status, running: bool) -> None:
    from statehub import age_text, when_text

    state = (
        status.link
        if running
        else f"not running (last seen {when_text(status.updated)}, link was {status.link})"
    )
    echo(f"uplink {status.site} -> {status.target}: {state}, pid {status.pid}")
    echo(
        f"cursor   revision {status.cursor} of epoch {status.epoch or '-'}; hub at {status.hub_rev}: "
        f"{status.lag_revisions} revisions behind, oldest unacknowledged {status.lag_seconds:.1f} s"
    )
    echo(f"forwarded {status.forwarded} changes since start; {status.resyncs} resyncs")
    if status.heartbeat:
        echo(
            f"heartbeat every {status.heartbeat_every:g} s, "
            f"last sent {age_text(max(0.0, time.time() - status.heartbeat))} ago"
        )
    if status.last_resync:
        echo(f"last resync: {status.last_resync}")
    if status.last_error:
        echo(f"last error: {status.last_error} ({age_text(time.time() - status.last_error_time)} ago)")


def _is_running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
