"""The pure replica against the shared table of sync cases (tests/vectors/sync.json), as the Rust crate's is."""

from __future__ import annotations

import json
from typing import Any

import msgspec
import pytest

from statehub.hub.protocol import Changed, ChangePage, Items, Published
from statehub.replica import CaughtUp, Fetch, Replica, Resync, Synced, Update

from .conftest import VECTORS

CASES = json.loads((VECTORS / "sync.json").read_text())["cases"]


def decode(data: dict[str, Any], kind: Any) -> Any:
    return msgspec.json.decode(json.dumps(data), type=kind)


def change_of(change: Changed) -> list[Any]:
    return [change.key, change.op, change.value]


def answer_of(outcome: Any) -> dict[str, Any]:
    """An outcome in the table's terms."""
    if isinstance(outcome, Synced):
        changes = sorted((change_of(c) for c in outcome.changes), key=lambda c: c[0])
        fields = {"rev": outcome.rev, "epoch": outcome.epoch, "first": outcome.first, "resync": outcome.resync}
        return {"synced": {**fields, "cause": outcome.cause, "changes": changes}}
    if isinstance(outcome, Update):
        return {"update": {"rev": outcome.rev, "origin": outcome.origin, "changes": [change_of(c) for c in outcome.changes]}}
    if isinstance(outcome, Fetch):
        return {"fetch": {"after": outcome.after, "limit": outcome.limit, "cause": outcome.cause}}
    if isinstance(outcome, Resync):
        return {"resync": {"cause": outcome.cause}}
    assert isinstance(outcome, CaughtUp)
    return {"caught_up": {"rev": outcome.rev, "replayed": outcome.replayed, "cause": outcome.cause}}


def run_step(replica: Replica, step: dict[str, Any]) -> list[Any]:
    if "load" in step:
        return [replica.load(decode(step["load"], Items), step["cause"], "from the table")]
    if "published" in step:
        return replica.receive(decode(step["published"], Published))
    if "page" in step:
        return replica.receive_page(decode(step["page"], ChangePage))
    return [replica.catch_up(step["catch_up"], "from the table")]


def test_the_table_covers_every_rule_the_issue_names() -> None:
    """Gap, epoch change, heartbeat ahead, txn assembly, replay page and compacted each have a case."""
    names = " ".join(case["name"] for case in CASES)
    for rule in ("gap", "epoch", "heartbeat_ahead", "txn", "replays", "compacted", "large_value", "resumes"):
        assert rule in names, rule


@pytest.mark.parametrize("case", CASES, ids=[case["name"] for case in CASES])
def test_the_replica_answers_each_case_as_the_table_says(case: dict[str, Any]) -> None:
    """Every input gets exactly the expected answers, and the replica ends holding the expected state."""
    replica = Replica(case["prefix"])
    for number, step in enumerate(case["steps"]):
        answers = [answer_of(outcome) for outcome in run_step(replica, step)]
        assert answers == step["expect"], f"step {number}: {step}"
    items = {key: [msgspec.to_builtins(item.value), item.rev] for key, item in replica.items.items()}
    assert {"epoch": replica.epoch, "rev": replica.rev, "items": items} == case["state"]
