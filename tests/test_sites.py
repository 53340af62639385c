"""Sites linked through a real NATS JetStream: site hubs, uplinks, follow-sites and a central hub."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from statehub import Op
from statehub.testing import HubProcess, wait_until

from .servers import Nats, nats_server
from .sites_support import central_origins, central_values, follower, link_rev, site_values, uplink

DEADLINE = 30.0


@pytest.fixture
def nats(tmp_path: Path) -> Iterator[Nats]:
    with nats_server(tmp_path / "nats") as server:
        yield server


def test_changes_at_two_sites_appear_at_the_centre_under_their_prefixes_in_order(
    tmp_path: Path, nats: Nats
) -> None:
    """Every change of two sites lands at the centre under sites.<site>., in each site's revision order."""
    with (
        HubProcess(tmp_path / "north") as north,
        HubProcess(tmp_path / "south") as south,
        HubProcess(tmp_path / "centre") as centre,
        north.client() as at_north,
        south.client() as at_south,
        centre.client() as at_centre,
    ):
        at_north.set("plant.rate", 1)  # before the uplinks start: their first resync carries these
        at_south.set("pump.a", 1)
        with (
            uplink(north, nats.url, "north", tmp_path),
            uplink(south, nats.url, "south", tmp_path),
            follower(centre, nats.url, tmp_path) as follow,
        ):
            assert wait_until(
                lambda: link_rev(at_centre, "north") == link_rev(at_centre, "south") == 1, DEADLINE
            )
            for value in range(2, 30):
                at_north.set("plant.rate", value)
                at_south.txn(
                    [Op(op="set", key="pump.a", value=value), Op(op="set", key="pump.b", value=-value)]
                )
            at_north.unset("plant.rate")
            at_north.set("plant.name", "Maxson")
            last_north, last_south = at_north.status().rev, at_south.status().rev
            assert wait_until(
                lambda: (
                    link_rev(at_centre, "north") == last_north and link_rev(at_centre, "south") == last_south
                ),
                DEADLINE,
            ), follow.text()
        assert central_values(at_centre, "north") == site_values(at_north) == {"plant.name": "Maxson"}
        assert central_values(at_centre, "south") == site_values(at_south) == {"pump.a": 29, "pump.b": -29}
        history = [version.value for version in at_centre.history("sites.south.pump.a", 100)]
        assert history == list(range(29, 0, -1))  # every revision, newest first: none skipped, none twice
        origins = central_origins(at_centre, "north")
        assert origins["plant.name"] is not None
        assert (origins["plant.name"].site, origins["plant.name"].rev) == ("north", last_north)
