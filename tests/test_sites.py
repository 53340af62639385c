"""Sites linked through a real NATS JetStream: site hubs, uplinks, follow-sites and a central hub."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from statehub import Client, Op
from statehub.testing import HubProcess, wait_until

from .servers import Nats, nats_server
from .sites_support import central_origins, central_values, follower, link_rev, site_values, uplink

DEADLINE = 45.0


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


class Writer:
    """A thread writing w.k0..w.k4 at one site, paced, until stopped; a refused or unanswered write is skipped."""

    def __init__(self, hub: HubProcess) -> None:
        import threading

        self.hub = hub
        self.stop = threading.Event()
        self.done = 0
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        from statehub import StatehubError

        with self.hub.client(timeout=2.0) as client:
            for value in range(20_000):
                if self.stop.wait(0.004):
                    return
                try:
                    client.set(f"w.k{value % 5}", value)
                    self.done += 1
                except StatehubError:
                    continue

    def __enter__(self) -> Writer:
        self.thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop.set()
        self.thread.join(timeout=30)

    def wait_for(self, more: int) -> None:
        """Until ``more`` further writes committed."""
        target = self.done + more
        assert wait_until(lambda: self.done >= target, DEADLINE), f"the writer stalled at {self.done}"


@pytest.mark.timeout(180)  # five processes, three outages and their recoveries, on a busy machine
def test_outages_of_nats_the_uplink_and_a_site_hub_lose_nothing_and_apply_nothing_twice(
    tmp_path: Path, nats: Nats
) -> None:
    """nats-server and an uplink SIGKILLed and restarted, a site hub restarted, writes going on: the centre ends equal."""
    with (
        HubProcess(tmp_path / "north") as north,
        HubProcess(tmp_path / "south") as south,
        HubProcess(tmp_path / "centre") as centre,
        north.client() as at_north,
        centre.client() as at_centre,
    ):
        at_north.set("w.k0", -1)
        with south.client() as at_south:
            at_south.set("w.k0", -1)
        north_link = uplink(north, nats.url, "north", tmp_path).start()
        south_link = uplink(south, nats.url, "south", tmp_path).start()
        follow = follower(centre, nats.url, tmp_path).start()
        try:
            assert wait_until(
                lambda: link_rev(at_centre, "north") == link_rev(at_centre, "south") == 1, DEADLINE
            )
            with Writer(north) as north_writer, Writer(south) as south_writer:
                north_writer.wait_for(50)

                nats.kill()
                north_writer.wait_for(100)
                nats.start()
                before = link_rev(at_centre, "north")
                assert wait_until(lambda: link_rev(at_centre, "north") > before + 50, DEADLINE), follow.text()

                north_link.kill()
                north_writer.wait_for(100)
                north_link.start()

                south.terminate()
                south.start()
                south_writer.wait_for(100)
                north_writer.wait_for(50)
            with south.client() as at_south:
                heads = {"north": at_north.status().rev, "south": at_south.status().rev}
                assert wait_until(
                    lambda: all(link_rev(at_centre, site) == rev for site, rev in heads.items()), DEADLINE
                ), follow.text()
                for site, client in (("north", at_north), ("south", at_south)):
                    assert central_values(at_centre, site) == site_values(client)
                    for index in range(5):
                        key = f"w.k{index}"
                        at_site = [version.rev for version in client.history(key, 10_000)]
                        applied = [
                            version.origin.rev
                            for version in at_centre.history(f"sites.{site}.{key}", 10_000)
                            if version.origin
                        ]
                        assert applied == at_site, f"{site} {key}: each site revision once, in order"
        finally:
            for process in (north_link, south_link, follow):
                process.stop()


def test_a_fleet_key_set_at_the_centre_reaches_every_site(tmp_path: Path, nats: Nats) -> None:
    """fleet.* written at the centre lands in both site hubs with source fleet, and is never sent back up."""
    with (
        HubProcess(tmp_path / "north") as north,
        HubProcess(tmp_path / "south") as south,
        HubProcess(tmp_path / "centre") as centre,
        north.client() as at_north,
        south.client() as at_south,
        centre.client() as at_centre,
        uplink(north, nats.url, "north", tmp_path),
        uplink(south, nats.url, "south", tmp_path),
        follower(centre, nats.url, tmp_path) as follow,
    ):
        at_centre.set("fleet.dosing.limit", 4.5)
        for client in (at_north, at_south):
            assert wait_until(lambda c=client: _value(c, "fleet.dosing.limit") == 4.5, DEADLINE), (
                follow.text()
            )
            assert client.get("fleet.dosing.limit").item.source == "fleet"
        at_centre.set("fleet.dosing.limit", 5.0)
        assert wait_until(lambda: _value(at_south, "fleet.dosing.limit") == 5.0, DEADLINE)
        at_north.set("plant.rate", 1)
        assert wait_until(lambda: "plant.rate" in central_values(at_centre, "north"), DEADLINE)
        assert "fleet.dosing.limit" not in central_values(at_centre, "north"), "a fleet key went back up"


def test_a_fleet_key_is_read_only_for_a_local_writer_at_a_site(tmp_path: Path, nats: Nats) -> None:
    """A site's own writer may not change a fleet key: the hub refuses it with a clear error."""
    from statehub import StatehubError

    with (
        HubProcess(tmp_path / "north") as north,
        HubProcess(tmp_path / "centre") as centre,
        north.client() as at_north,
        centre.client() as at_centre,
        uplink(north, nats.url, "north", tmp_path),
        follower(centre, nats.url, tmp_path),
    ):
        at_centre.set("fleet.dosing.limit", 4.5)
        assert wait_until(lambda: _value(at_north, "fleet.dosing.limit") == 4.5, DEADLINE)
        with pytest.raises(
            StatehubError,
            match=r"may be written only by source 'fleet' \(schema: .*\); this write came from source",
        ):
            at_north.set("fleet.dosing.limit", 9.9)
        assert _value(at_north, "fleet.dosing.limit") == 4.5


def test_a_fleet_key_unset_at_the_centre_while_follow_sites_was_down_is_removed_at_the_sites(
    tmp_path: Path, nats: Nats
) -> None:
    """follow-sites, started again, unsets at the sites the fleet keys the centre no longer has."""
    with (
        HubProcess(tmp_path / "north") as north,
        HubProcess(tmp_path / "centre") as centre,
        north.client() as at_north,
        centre.client() as at_centre,
        uplink(north, nats.url, "north", tmp_path) as link,
    ):
        at_centre.set("fleet.dosing.limit", 4.5)
        at_centre.set("fleet.dosing.mode", "auto")
        with follower(centre, nats.url, tmp_path) as follow:
            assert wait_until(lambda: _value(at_north, "fleet.dosing.mode") == "auto", DEADLINE), (
                follow.text()
            )
        at_centre.unset("fleet.dosing.mode")
        with follower(centre, nats.url, tmp_path) as follow:
            assert wait_until(lambda: _value(at_north, "fleet.dosing.mode") is None, DEADLINE), (
                follow.text() + link.text()
            )
            assert _value(at_north, "fleet.dosing.limit") == 4.5
            assert "and 1 removals" in follow.text()


def test_a_quiet_site_keeps_its_heartbeat_fresh_at_the_centre_and_a_gone_one_is_said_silent(
    tmp_path: Path, nats: Nats
) -> None:
    """With nothing changing, the link record's heartbeat still advances; a killed uplink goes silent, then is heard."""
    with (
        HubProcess(tmp_path / "north") as north,
        HubProcess(tmp_path / "centre") as centre,
        north.client() as at_north,
        centre.client() as at_centre,
        follower(centre, nats.url, tmp_path) as follow,
    ):
        at_north.set("plant.rate", 1)
        link = uplink(north, nats.url, "north", tmp_path, "--heartbeat", "0.3").start()
        try:
            assert wait_until(lambda: _heartbeat(at_centre, "north").get("rev") == 1, DEADLINE), follow.text()
            first = _heartbeat(at_centre, "north")
            assert (first["hub_rev"], first["every"], first["hub_down"]) == (1, 0.3, "")
            assert wait_until(
                lambda: _heartbeat(at_centre, "north")["received"] > first["received"], DEADLINE
            )
            assert link_rev(at_centre, "north") == 1, "a heartbeat is not a revision of the site"
            status = tmp_path / "state-north" / "nats-north.status.json"
            assert wait_until(lambda: json.loads(status.read_text())["heartbeat"] > 0, DEADLINE)
            link.kill()
            assert wait_until(lambda: "site north: silent" in follow.text(), DEADLINE), follow.text()
            link.start()
            assert wait_until(lambda: "site north: heard again" in follow.text(), DEADLINE), follow.text()
        finally:
            link.stop()


def test_a_key_that_becomes_a_secret_at_a_site_leaves_the_centre(tmp_path: Path, nats: Nats) -> None:
    """Its last plain value is unset at the centre; the secret itself never travels, nor a secret born one."""
    with (
        HubProcess(tmp_path / "north") as north,
        HubProcess(tmp_path / "centre") as centre,
        north.client() as at_north,
        centre.client() as at_centre,
        uplink(north, nats.url, "north", tmp_path),
        follower(centre, nats.url, tmp_path) as follow,
    ):
        at_north.set("plant.password", "plain-old")
        assert wait_until(
            lambda: central_values(at_centre, "north").get("plant.password") == "plain-old", DEADLINE
        ), follow.text()
        at_north.set_secret("plant.password", "hunter2")
        at_north.set_secret("plant.token", "born-secret")
        at_north.set_secret("plant.password", "hunter3")
        at_north.set("plant.rate", 1)
        head = at_north.status().rev
        assert wait_until(lambda: link_rev(at_centre, "north") == head, DEADLINE), follow.text()
        assert central_values(at_centre, "north") == {"plant.rate": 1}
        assert [version.op for version in at_centre.history("sites.north.plant.password", 10)] == [
            "unset",
            "set",
        ]


def _heartbeat(client: Client, site: str) -> dict[str, Any]:
    """The last heartbeat of ``site`` in its link record at the centre ({} when none yet)."""
    from statehub import NotFound

    try:
        return dict(client.get(f"statehub.link.{site}").value.get("heartbeat") or {})
    except NotFound:
        return {}


def _value(client: Client, key: str) -> object:
    from statehub import NotFound

    try:
        return client.get(key).value
    except NotFound:
        return None


@pytest.mark.timeout(120)  # a dozen CLI processes
def test_uplink_status_shows_cursor_lag_link_and_the_last_error(tmp_path: Path, nats: Nats) -> None:
    """`statehub uplink --status --json` reports the cursor at the hub's head while linked, and why when not."""
    import json

    from .conftest import run_cli

    with HubProcess(tmp_path / "north") as north, north.client() as at_north:
        at_north.set("plant.rate", 1)
        state = ["--site", "north", "--state-dir", str(tmp_path / "state-north")]

        def status() -> dict[str, object]:
            result = run_cli(north.data_dir, "uplink", "--status", "--json", *state)
            assert result.returncode in (0, 3), result.stderr  # 3: no status yet, the uplink is starting
            return dict(json.loads(result.stdout)) if result.returncode == 0 else {}

        with uplink(north, nats.url, "north", tmp_path) as link:
            at_north.set("plant.rate", 2)
            assert wait_until(
                lambda: (now := status()).get("cursor") == 2 and now["link"] == "up", DEADLINE
            ), link.text()
            now = status()
            assert (now["running"], now["lag_revisions"], now["resyncs"], now["site"]) == (
                True,
                0,
                1,
                "north",
            )
            nats.kill()
            assert wait_until(lambda: status().get("link") == "down", DEADLINE), link.text()
            assert "NATS" in str(status()["last_error"])
            text = run_cli(north.data_dir, "uplink", "--status", *state)
            assert "uplink north -> nats://" in text.stdout and "last error:" in text.stdout
            assert "heartbeat every 30 s, last sent" in text.stdout
            # SIGTERM ends it while NATS is still down: it is not deaf inside a connect attempt.
            assert link.stop() == 0, link.text()
        assert status()["running"] is False
    missing = run_cli(
        tmp_path / "nowhere", "uplink", "--status", "--site", "east", "--state-dir", str(tmp_path)
    )
    assert missing.returncode == 3 and "no uplink status for site 'east'" in missing.stderr
