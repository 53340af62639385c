"""The HTTP API of `statehub web` (docs/http.md), against a real hub and a real web process on loopback."""

from __future__ import annotations

import signal
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip("starlette", reason="statehub[web] is not installed")
pytest.importorskip("httpx", reason="httpx is not installed")

from statehub.hub.protocol import Op  # noqa: E402
from statehub.testing import HubProcess, mirror_rev, wait_until  # noqa: E402
from tests.web_support import SseReader, WebProcess  # noqa: E402

JSON = {"Content-Type": "application/json"}


@pytest.fixture
def web(hub: HubProcess, data_dir: Path) -> Iterator[WebProcess]:
    with WebProcess(data_dir) as process:
        process.wait_following()
        yield process


def test_keys_and_one_key_come_with_their_revision_as_etag(hub: HubProcess, web: WebProcess) -> None:
    """GET /api/keys lists a prefix; GET /api/keys/KEY gives the item with ETag "rev"."""
    with hub.client() as client:
        client.set("plant.rate", 30)
        client.set("plant.name", "Maxson")
        client.set("eds.flow", 1.5)
    with web.http() as http:
        listing = http.get("/api/keys", params={"prefix": "plant."})
        assert listing.status_code == 200
        assert [item["key"] for item in listing.json()["items"]] == ["plant.name", "plant.rate"]
        one = http.get("/api/keys/plant.rate")
        assert one.status_code == 200 and one.headers["etag"] == '"1"'
        body = one.json()
        assert (body["value"], body["rev"], body["source"], body["origin"]["from_mirror"]) == (30, 1, "python", False)
        missing = http.get("/api/keys/plant.nothing")
        assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"
        bad = http.get("/api/keys/plant..rate")
        assert bad.status_code == 400 and "empty segment" in bad.json()["error"]["message"]


def test_put_with_a_stale_if_match_is_refused_with_the_current_item(hub: HubProcess, web: WebProcess) -> None:
    """PUT If-Match: old revision -> 412 carrying what the key holds now, and nothing is written."""
    with hub.client(source="gui", user="jane") as client:
        client.set("plant.rate", 30)
        client.set("plant.rate", 31)
    with web.http() as http:
        stale = http.put("/api/keys/plant.rate", json={"value": 99}, headers={"If-Match": '"1"'})
        assert stale.status_code == 412
        body = stale.json()
        assert body["error"]["code"] == "conflict"
        assert body["current"]["value"] == 31 and body["current"]["rev"] == 2
        assert (body["current"]["user"], body["current"]["source"]) == ("jane", "gui")
        fresh = http.put("/api/keys/plant.rate", json={"value": 32}, headers={"If-Match": '"2"'})
        assert fresh.status_code == 200 and fresh.headers["etag"] == '"3"' and fresh.json()["rev"] == 3
        create_only = http.put("/api/keys/plant.rate", json={"value": 1}, headers={"If-None-Match": "*"})
        assert create_only.status_code == 412
    with hub.client() as client:
        assert client.get("plant.rate").value == 32
        assert client.history("plant.rate")[0].source == "web"


def test_delete_is_compare_and_set_too(hub: HubProcess, web: WebProcess) -> None:
    """DELETE with a stale If-Match is refused; with the right one the key is gone; again: 404."""
    with hub.client() as client:
        client.set("plant.old", 1)
    with web.http() as http:
        assert http.delete("/api/keys/plant.old", headers={"If-Match": "7"}).status_code == 412
        assert http.delete("/api/keys/plant.old", headers={"If-Match": "1"}).status_code == 200
        assert http.get("/api/keys/plant.old").status_code == 404
        assert http.delete("/api/keys/plant.old").status_code == 404


def test_values_keep_the_json_type_they_were_sent_with(hub: HubProcess, web: WebProcess) -> None:
    """A string that looks like a number stays a string; numbers, booleans, null and maps stay what they are."""
    values = {"a.text": "42", "a.num": 42, "a.float": 2.5, "a.flag": False, "a.none": None, "a.map": {"x": [1, "2"]}}
    with web.http() as http:
        for key, value in values.items():
            assert http.put(f"/api/keys/{key}", json={"value": value}).status_code == 200
    with hub.client() as client:
        assert {key: client.get(key).value for key in values} == values


def test_txn_applies_all_or_nothing_and_answers_409_with_each_conflict(hub: HubProcess, web: WebProcess) -> None:
    """POST /api/txn commits every op under one revision, or none when a condition fails (409)."""
    with hub.client() as client:
        client.set("t.a", 1)
    with web.http() as http:
        ok = http.post("/api/txn", json={"ops": [{"op": "set", "key": "t.a", "value": 2, "expect": 1}, {"op": "set", "key": "t.b", "value": 3}]})
        assert ok.status_code == 200 and ok.json()["rev"] == 2
        refused = http.post("/api/txn", json={"ops": [{"op": "set", "key": "t.a", "value": 9, "expect": 1}, {"op": "unset", "key": "t.b"}]})
        assert refused.status_code == 409
        assert refused.json()["conflicts"] == [
            {"key": "t.a", "expected": 1, "current": refused.json()["conflicts"][0]["current"]}
        ]
        assert refused.json()["conflicts"][0]["current"]["rev"] == 2
    with hub.client() as client:
        assert client.get("t.a").value == 2 and client.get("t.b").value == 3


def test_bad_bodies_get_clear_refusals_and_write_nothing(hub: HubProcess, web: WebProcess) -> None:
    """Not JSON, an unknown field, a wrong type or a non-JSON content type: 400/415 naming the problem."""
    with web.http() as http:
        not_json = http.put("/api/keys/b.k", content=b"{value: 1", headers=JSON)
        assert not_json.status_code == 400 and "not JSON" in not_json.json()["error"]["message"]
        unknown = http.put("/api/keys/b.k", json={"value": 1, "secret": "value"})
        assert unknown.status_code == 400 and "secret" in unknown.json()["error"]["message"]
        wrong = http.post("/api/txn", json={"ops": [{"op": "rename", "key": "b.k"}]})
        assert wrong.status_code == 400 and "ops[0].op" in wrong.json()["error"]["message"]
        form = http.put("/api/keys/b.k", content=b"value=1", headers={"Content-Type": "application/x-www-form-urlencoded"})
        assert form.status_code == 415
        assert http.get("/api/keys/b.k").status_code == 404
        limit = http.get("/api/keys/b.k/history", params={"limit": "0"})
        assert limit.status_code == 400 and "limit" in limit.json()["error"]["message"]
        route = http.get("/api/nothing")
        assert route.status_code == 404 and route.json()["error"]["code"] == "no_route"
        method = http.post("/api/keys/b.k", json={"value": 1})
        assert method.status_code == 405 and method.json()["error"]["code"] == "method_not_allowed"


def test_history_lists_versions_newest_first(hub: HubProcess, web: WebProcess) -> None:
    """GET /api/keys/KEY/history shows old -> new, who and when, newest first, honouring ?limit."""
    with hub.client(user="ana") as client:
        for value in (1, 2, 3):
            client.set("h.k", value)
    with web.http() as http:
        versions = http.get("/api/keys/h.k/history").json()["versions"]
        assert [(v["rev"], v["prev_value"], v["value"], v["user"]) for v in versions] == [
            (3, 2, 3, "ana"), (2, 1, 2, "ana"), (1, None, 1, "ana")
        ]
        assert len(http.get("/api/keys/h.k/history", params={"limit": 2}).json()["versions"]) == 2


# --- the event stream ---------------------------------------------------------------------------


def test_a_stream_starts_with_the_state_then_carries_each_revision_with_its_id(hub: HubProcess, web: WebProcess) -> None:
    """The first event is a resync holding the items; each later commit is a change with id epoch:rev."""
    with hub.client() as client:
        client.set("s.a", 1)
        reader = SseReader(web.url + "api/events?prefix=s.")
        try:
            assert wait_until(lambda: reader.of("status"), 10), reader.raw
            (resync,) = reader.of("resync")
            assert [item["key"] for item in resync.data["items"]] == ["s.a"]
            epoch = resync.data["epoch"]
            assert resync.id == f"{epoch}:1"
            client.set("other.x", 1)  # not under the prefix: not sent
            committed = client.txn([Op(op="set", key="s.a", value=2), Op(op="set", key="s.b", value=3)])
            assert wait_until(lambda: reader.of("change"), 10)
            (change,) = reader.of("change")
            assert change.id == f"{epoch}:{committed.rev}"
            assert [(c["key"], c["value"], c["source"]) for c in change.data["changes"]] == [("s.a", 2, "python"), ("s.b", 3, "python")]
        finally:
            reader.close()
        assert reader.status_code == 200


def test_a_reconnecting_client_gets_exactly_the_revisions_it_missed(hub: HubProcess, web: WebProcess) -> None:
    """Last-Event-ID inside the log: the missed changes, in order, and no resync."""
    with hub.client() as client:
        client.set("r.k", 0)
        first = SseReader(web.url + "api/events")
        assert wait_until(lambda: first.of("status"), 10)
        first.close()
        last = first.last_id()
        assert last is not None
        revs = [client.set("r.k", n).rev for n in range(1, 6)]
        client.set("r.other", 1)
        second = SseReader(web.url + "api/events?prefix=r.k", headers={"Last-Event-ID": last})
        try:
            assert wait_until(lambda: len(second.of("change")) >= 5, 10), second.raw
            assert second.of("resync") == []
            assert second.changed_keys() == [(rev, "r.k") for rev in revs]
            assert [c["value"] for e in second.of("change") for c in e.data["changes"]] == [1, 2, 3, 4, 5]
        finally:
            second.close()
        # The page passes the id in the query when it opens a new EventSource itself.
        third = SseReader(web.url + f"api/events?last_event_id={last}")
        try:
            assert wait_until(lambda: len(third.of("change")) >= 6, 10)
            assert third.of("resync") == []
        finally:
            third.close()


def test_a_client_too_far_behind_or_from_another_epoch_gets_one_resync(hub: HubProcess, data_dir: Path) -> None:
    """Last-Event-ID older than the replay log, or of another epoch: one resync with the current state."""
    with WebProcess(data_dir, "--replay", "10") as web, hub.client() as client:
        web.wait_following()
        client.set("o.k", 0)
        first = SseReader(web.url + "api/events")
        assert wait_until(lambda: first.of("status"), 10)
        first.close()
        old = first.last_id()
        assert old is not None
        for n in range(1, 30):
            client.set("o.k", n)
        with web.http() as http:
            assert wait_until(lambda: http.get("/api/status").json()["rev"] == 30, 10)
        for last in (old, "another-epoch:3"):
            reader = SseReader(web.url + "api/events", headers={"Last-Event-ID": last})
            try:
                assert wait_until(lambda r=reader: r.of("status"), 10)  # type: ignore[misc]
                (resync,) = reader.of("resync")
                assert [(i["key"], i["value"]) for i in resync.data["items"]] == [("o.k", 29)]
                assert resync.id is not None and resync.id.endswith(":30")
                assert reader.of("change") == []
            finally:
                reader.close()


def test_the_stream_reports_the_hub_down_with_the_mirror_and_goes_on_when_it_returns(hub: HubProcess, web: WebProcess) -> None:
    """Kill the hub: a status event says down with the mirror's revision; restart it: the stream goes on.

    The follower replays what the hub committed as it returned from the hub's history, so
    the changes arrive as changes, in order, and the stream is never resynced.
    """
    with hub.client() as client:
        client.set("d.k", 1)
    reader = SseReader(web.url + "api/events")
    try:
        assert wait_until(lambda: reader.of("status") and reader.state() == {"d.k": 1}, 10)
        # The mirror is rewritten a moment after a commit: kill the hub only once it holds revision 1.
        assert wait_until(lambda: mirror_rev(hub.data_dir) == 1, 15)
        hub.kill()
        assert wait_until(lambda: any(e.data["state"] == "down" for e in reader.of("status")), 15), reader.raw
        down = next(e for e in reader.of("status") if e.data["state"] == "down")
        assert down.data["mirror_rev"] == 1 and down.data["mirror_written"] > 0
        assert down.id is None  # a status never moves the resume point
        hub.start()
        with hub.client() as client:
            client.set("d.k", 2)
            client.set("d.j", 3)
        assert wait_until(lambda: reader.state() == {"d.k": 2, "d.j": 3}, 15), reader.raw
        assert wait_until(lambda: reader.of("status")[-1].data["state"] == "live", 5)
        assert len(reader.of("resync")) == 1  # the stream's start; none for the restart
        assert [key for _, key in reader.changed_keys()][-2:] == ["d.k", "d.j"]
    finally:
        reader.close()


def test_a_stalled_client_is_dropped_without_slowing_the_hub_or_other_streams(hub: HubProcess, data_dir: Path) -> None:
    """A client that never reads overflows its queue and is dropped; a reading one gets every revision."""
    with WebProcess(data_dir, "--stream-queue", "20") as web, hub.client() as client:
        web.wait_following()
        host, port = web.url.removeprefix("http://").rstrip("/").split(":")
        stalled = socket.create_connection((host, int(port)), timeout=10)
        stalled.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        stalled.sendall(f"GET /api/events HTTP/1.1\r\nHost: {host}:{port}\r\n\r\n".encode())
        reader = SseReader(web.url + "api/events")
        try:
            with web.http() as http:
                assert wait_until(lambda: http.get("/api/status").json()["streams"] == 2, 10)
                big = "x" * 3000
                revs: list[int] = []
                for _batch in range(40):  # until the kernel's buffers and the queue are full: bounded
                    revs += [client.txn([Op(op="set", key=f"big.{i}", value=big + str(n)) for i in range(10)]).rev for n in range(50)]
                    if http.get("/api/status").json()["dropped_streams"] >= 1:
                        break
                assert wait_until(lambda: http.get("/api/status").json()["dropped_streams"] >= 1, 20), web.log
                assert wait_until(lambda: len(reader.of("change")) == len(revs), 30)
            assert [int(e.id.split(":")[1]) for e in reader.of("change") if e.id] == revs
        finally:
            reader.close()
            stalled.close()


def test_sigterm_ends_open_streams_and_stops_cleanly(hub: HubProcess, web: WebProcess) -> None:
    """SIGTERM with a stream open: the stream ends and the server shuts down cleanly, not waiting on the stream.

    uvicorn re-raises the signal once it has shut down, so the exit status is "terminated by
    SIGTERM", which systemd and Docker count as a clean stop.
    """
    reader = SseReader(web.url + "api/events")
    assert wait_until(lambda: reader.of("status"), 10)
    assert web.terminate(timeout=15) in (0, -signal.SIGTERM)
    assert reader.ended.wait(10)
    assert "Application shutdown complete" in web.log
