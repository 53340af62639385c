"""``statehub follow-sites``: apply every site's changes into this central hub (the extra ``statehub[sites]``)."""

from __future__ import annotations

from typing import Annotated

import typer

from statehub.cli.base import reported, settings_of, show_logs
from statehub.cli.options import OwnDataDirOption, OwnTimeoutOption, add_command
from statehub.cli.uplink import make_client_factory, require_sites_extra


def register(app: typer.Typer) -> None:
    add_command(app, follow_sites, "follow-sites")


def follow_sites(
    ctx: typer.Context,
    url: Annotated[
        str, typer.Argument(help="The NATS server the sites' uplinks publish to: nats://HOST:PORT.")
    ],
    durable: Annotated[
        str, typer.Option("--durable", help="The JetStream consumer's name: one per central hub.")
    ] = "statehub-centre",
    fleet: Annotated[
        bool,
        typer.Option("--fleet/--no-fleet", help="Also forward this hub's fleet. keys down to every site."),
    ] = True,
    data_dir: OwnDataDirOption = None,
    timeout: OwnTimeoutOption = None,
) -> None:
    """Apply each site's changes under sites.SITE.KEY, exactly once and in order, keeping their origin.

    Each site revision becomes one txn here, with the site's revision, time,
    source and user stored as the origin, and the site's link record
    (statehub.link.SITE) in the same txn. See docs/sites.md.
    """
    from statehub import InvalidRequest

    settings = settings_of(ctx).with_own(data_dir, timeout)
    with reported(settings.debug):
        if not url.startswith("nats://"):
            raise InvalidRequest(f"cannot follow {url!r}: give the NATS server as nats://HOST:PORT")
        require_sites_extra("follow-sites")
        from statehub.sites.follower import FollowConfig
        from statehub.sites.follower import follow_sites as run
        from statehub.sites.runner import run_until_signalled

        show_logs()
        config = FollowConfig(
            url=url, make_client=make_client_factory(settings), durable=durable, fleet=fleet
        )
        run_until_signalled(lambda stop: run(config, stop))
