"""The schema in the hub: every write path judged by it, against real hub processes."""

from __future__ import annotations

import json
from pathlib import Path

import msgspec
import pytest

from statehub import ConflictError, InvalidRequest, Op
from statehub.hub import inbox
from statehub.hub.paths import Layout, read_hub_info
from statehub.hub.protocol import Error, Set, Txn, reply_decoder
from statehub.testing import HubProcess, mirror_rev, wait_until

from .conftest import run_cli
from .schema_support import SMALL, plant_schema

RATE_REFUSAL = (
    "invalid value for 'plant.north.rate': expected integer 0..500 (schema: plant.*.rate), got \"fast\""
)


@pytest.fixture
def schema_hub(hub: HubProcess) -> HubProcess:
    with hub.client() as client:
        client.set("statehub.schema", SMALL)
    return hub


def test_a_set_is_refused_naming_key_rule_value_and_what_is_allowed(schema_hub: HubProcess) -> None:
    """A value the schema does not allow is refused with `invalid`, in the docs' words, and nothing is written."""
    with schema_hub.client() as client:
        with pytest.raises(InvalidRequest) as refused:
            client.set("plant.north.rate", "fast")
        client.set("plant.north.rate", 30)
        assert client.get("plant.north.rate").value == 30
    assert refused.value.message == RATE_REFUSAL
    assert refused.value.code == "invalid"


def test_the_docs_plant_schema_gives_the_docs_verdicts_on_a_real_hub(hub: HubProcess) -> None:
    """The plant schema of docs/schema.md, applied to a hub, refuses and accepts what its table says."""
    with hub.client(source="cli") as client:
        client.set("statehub.schema", plant_schema())
        client.set("plant.north.rate", 30)
        client.set("plant.south.do", 9.0)
        with pytest.raises(
            InvalidRequest, match=r"expected number 0\.5\.\.8\.0 \(schema: plant\.north\.do\), got 9\.0"
        ):
            client.set("plant.north.do", 9.0)
        with pytest.raises(InvalidRequest) as unknown:
            client.set("plant.nmae", "x")
        with pytest.raises(InvalidRequest) as writer:
            client.set("eds.Maxson.FI101", {"value": 1})
        warned = client.set("eds.plant", "Maxson")
    assert unknown.value.message == (
        "unknown key 'plant.nmae': not in the schema, which refuses unknown keys under 'plant.'; "
        "did you mean 'plant.name'?"
    )
    assert writer.value.message == (
        "'eds.Maxson.FI101' may be written only by source 'eds' (schema: eds.*.*); "
        "this write came from source 'cli'"
    )
    assert warned.warnings == [
        "unknown key 'eds.plant': not in the schema (accepted: unknown keys under 'eds.' only warn)"
    ]


def test_a_txn_is_refused_whole_when_one_op_breaks_the_schema(schema_hub: HubProcess) -> None:
    """One bad op refuses the whole txn: the good op beside it is not written."""
    with schema_hub.client() as client:
        with pytest.raises(InvalidRequest, match="plant.mode"):
            client.txn(
                [Op(op="set", key="plant.a.rate", value=5), Op(op="set", key="plant.mode", value="off")]
            )
        assert client.list("plant.").items == []


def test_a_batch_is_refused_naming_the_write_and_the_rule(schema_hub: HubProcess) -> None:
    """A batch whose third write breaks the schema applies none, and the refusal names write 2."""
    with schema_hub.client(source="eds") as client:
        writes = [[Op(op="set", key="eds.p.x", value={"value": n})] for n in range(2)]
        writes.append([Op(op="set", key="eds.p.x", value=3)])
        with pytest.raises(InvalidRequest) as refused:
            client.batch(writes)
        assert client.list("eds.").items == []
    assert refused.value.message == (
        "write 2 of the batch (none was applied): invalid value for 'eds.p.x': expected table (schema: eds.*.*), got 3"
    )


def test_a_secret_rule_stores_the_key_as_a_secret_whatever_the_write_asked(schema_hub: HubProcess) -> None:
    """A key the schema calls secret is encrypted and shown as the placeholder, though it was written plain."""
    with schema_hub.client() as client:
        written = client.set("plant.token", "hunter22").rev
        shown = client.get("plant.token").item
        revealed = client.get("plant.token", reveal=True).value
    assert (shown.secret, shown.value, revealed) == (True, "<secret>", "hunter22")
    assert wait_until(lambda: mirror_rev(schema_hub.data_dir) >= written)
    assert "hunter22" not in (schema_hub.data_dir / "state.txt").read_text(encoding="utf-8")


def test_a_schema_that_does_not_compile_is_refused_and_the_old_one_stays(schema_hub: HubProcess) -> None:
    """Writing a bad schema text is refused with the load error; the schema in force does not change."""
    with schema_hub.client() as client:
        with pytest.raises(InvalidRequest) as refused:
            client.set("statehub.schema", SMALL.replace("default = 120", "default = 900"))
        with pytest.raises(InvalidRequest, match="plant.north.rate"):
            client.set("plant.north.rate", "fast")
    assert refused.value.message == (
        'statehub.schema: [keys."plant.*.rate"]: default 900 does not fit: expected integer 0..500'
    )


def test_a_txn_with_its_schema_is_judged_by_the_schema_it_brings(hub: HubProcess) -> None:
    """A txn that sets a schema and keys is judged by its own schema: a restore with its schema applies cleanly."""
    with hub.client() as client:
        client.set("plant.north.rate", "fast")  # no schema yet: allowed
        client.txn(
            [Op(op="set", key="statehub.schema", value=SMALL), Op(op="set", key="plant.south.rate", value=7)]
        )
        with pytest.raises(InvalidRequest, match=r"schema: plant\.\*\.rate"):
            client.txn(
                [
                    Op(op="set", key="statehub.schema", value=SMALL),
                    Op(op="set", key="plant.south.rate", value="x"),
                ]
            )
        assert client.get("plant.north.rate").value == "fast"  # stored values are not judged again


def test_unsetting_the_schema_allows_every_key_again(schema_hub: HubProcess) -> None:
    """Unsetting statehub.schema removes its rules: the next write is judged by no schema."""
    with schema_hub.client() as client:
        client.unset("statehub.schema")
        client.set("plant.north.rate", "fast")
        assert client.get("plant.north.rate").value == "fast"


def test_rollback_of_a_schema_is_a_write_judged_like_any_other(schema_hub: HubProcess) -> None:
    """A rollback to before the schema removes it with the rest; a rollback of values the schema refuses is refused."""
    with schema_hub.client() as client:
        before_schema = client.status().rev - 1
        client.set("plant.north.rate", 10)
    done = run_cli(schema_hub.data_dir, "rollback", "--to-rev", str(before_schema))
    assert done.returncode == 0, done.stderr
    with schema_hub.client() as client:
        client.set("plant.north.rate", "fast")  # the schema went back with the rest
        bad_rev = client.status().rev
        client.set("statehub.schema", SMALL)
        client.set("plant.north.rate", 20)
    refused = run_cli(schema_hub.data_dir, "rollback", "--to-rev", str(bad_rev), "--prefix", "plant.")
    assert refused.returncode == 2, refused.stderr
    assert RATE_REFUSAL in refused.stderr


def test_import_is_judged_by_the_schema(schema_hub: HubProcess, tmp_path: Path) -> None:
    """An export file with a value the schema refuses is not imported, and the refusal names the key and rule."""
    export = tmp_path / "bad.json"
    export.write_text(json.dumps({"values": {"plant.north.rate": "fast"}}), encoding="utf-8")
    done = run_cli(schema_hub.data_dir, "import", str(export))
    assert done.returncode == 2
    assert RATE_REFUSAL in done.stderr


def test_a_queued_write_the_schema_refuses_is_rejected_with_the_reason(tmp_path: Path) -> None:
    """A write queued while the hub was down, then refused by the schema, lands in rejected/ with the message."""
    data_dir = tmp_path / "data"
    with HubProcess(data_dir) as hub, hub.client() as client:
        client.set("statehub.schema", SMALL)
    inbox.enqueue(data_dir, Set(v=1, key="plant.north.rate", value="fast", request_id="q1"))
    inbox.enqueue(data_dir, Set(v=1, key="plant.north.rate", value=12, request_id="q2"))
    with HubProcess(data_dir) as hub, hub.client() as client:
        assert client.get("plant.north.rate").value == 12
    [rejected] = inbox.rejected(data_dir)
    assert rejected.reason == RATE_REFUSAL


def test_a_raw_write_from_any_client_cannot_bypass_the_schema(schema_hub: HubProcess) -> None:
    """A write sent as bytes, with no client library in between, is judged all the same."""
    from .test_hub import raw_request

    endpoint = read_hub_info(Layout(schema_hub.data_dir)).rpc
    body = msgspec.msgpack.encode(
        Txn(v=1, ops=[Op(op="set", key="plant.north.rate", value="fast")], source="eds")
    )
    raw = raw_request(endpoint, [b"", body])
    assert raw is not None
    reply = reply_decoder().decode(raw)
    assert isinstance(reply, Error)
    assert (reply.code, reply.message) == ("invalid", RATE_REFUSAL)


def test_a_conflict_is_still_reported_before_the_schema(schema_hub: HubProcess) -> None:
    """A stale compare-and-set is a conflict, whatever the value: the writer learns the newer revision first."""
    with schema_hub.client() as client:
        client.set("plant.north.rate", 1)
        client.set("plant.north.rate", 2)
        with pytest.raises(ConflictError):
            client.set("plant.north.rate", "fast", expect=1)


def test_a_waiting_hub_reports_a_bad_schema_file_and_serves(tmp_path: Path) -> None:
    """A schema.toml that does not compile is not applied: the hub starts, serves, and status names the file."""
    data_dir = tmp_path / "data"
    data_dir.mkdir(mode=0o700)
    (data_dir / "schema.toml").write_text(
        '[schema]\nformat = 1\n[keys."a"]\ntype = "integr"\n', encoding="utf-8"
    )
    with HubProcess(data_dir) as hub, hub.client() as client:
        status = client.status()
        client.set("a", "anything")
    assert len(status.schema_errors) == 1
    assert str(data_dir / "schema.toml") in status.schema_errors[0]


def test_a_schema_file_is_applied_once_and_never_over_a_later_apply(tmp_path: Path) -> None:
    """schema.toml applies at start as a revision by source 'schema'; unchanged, it does not undo a later apply."""
    data_dir = tmp_path / "data"
    data_dir.mkdir(mode=0o700)
    (data_dir / "schema.toml").write_text(SMALL, encoding="utf-8")
    with HubProcess(data_dir) as hub, hub.client() as client:
        item = client.get("statehub.schema").item
        with pytest.raises(InvalidRequest):
            client.set("plant.north.rate", "fast")
        client.unset("statehub.schema")
    assert (item.value, item.source) == (SMALL, "schema")
    with HubProcess(data_dir) as hub, hub.client() as client:
        client.set("plant.north.rate", "fast")  # the file did not come back: its text is unchanged
    (data_dir / "schema.toml").write_text(SMALL + "\n", encoding="utf-8")
    with HubProcess(data_dir) as hub, hub.client() as client:
        assert wait_until(lambda: client.get("statehub.schema").value == SMALL + "\n")
