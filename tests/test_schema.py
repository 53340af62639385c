"""The schema beyond the shared vectors: precedence against a brute-force reference, typed
input round trips, `schema check`, `schema docs`, replacing texts, and the shipped defaults."""

from __future__ import annotations

import itertools
import json
import tomllib
from importlib import resources
from pathlib import Path

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from statehub.hub.errors import InvalidRequest
from statehub.hub.protocol import SECRET_PLACEHOLDER, Item
from statehub.hub.schema import SCHEMA_KEY, Schema, fragment_key, load_schema, parse_schema, schema_key_for
from statehub.hub.schema_load import LOAD_HINT
from statehub.hub.schema_types import SHOWN_CHARACTERS, show_value
from statehub.waterfall import flatten, load_defaults

from .conftest import load_script

HEADER = "[schema]\nformat = 1\n"


def schema_of(body: str, **fragments: str) -> Schema:
    texts = {SCHEMA_KEY: HEADER + body}
    texts.update({fragment_key(prefix + "."): text for prefix, text in fragments.items()})
    return load_schema(texts)


def item(key: str, value: object, source: str = "cli", secret: bool = False) -> Item:
    return Item(key=key, value=value, rev=1, created_rev=1, time=0.0, source=source, secret=secret)


# --- precedence ---------------------------------------------------------------

SEGMENTS = ("a", "b", "*")
patterns = st.lists(
    st.integers(1, 3).flatmap(lambda n: st.tuples(*[st.sampled_from(SEGMENTS)] * n)).map(".".join),
    min_size=1,
    max_size=6,
    unique=True,
)


def reference_rules(names: list[str], key: str) -> list[str]:
    """The rules that win for ``key`` by the written precedence, found by looking at every rule."""
    segments = key.split(".")
    matching = [
        name
        for name in names
        if len(name.split(".")) == len(segments)
        and all(p in ("*", s) for p, s in zip(name.split("."), segments, strict=True))
    ]
    if key in matching:
        return [key]
    best = max((sum(p != "*" for p in name.split(".")) for name in matching), default=-1)
    return [name for name in matching if sum(p != "*" for p in name.split(".")) == best]


@settings(max_examples=300, deadline=None)
@given(patterns)
def test_the_compiled_matcher_agrees_with_looking_at_every_rule(names: list[str]) -> None:
    """A schema loads exactly when no key has two winning rules, and then each key gets the one winner."""
    body = "".join(f'[keys."{name}"]\ntype = "any"\n' for name in names)
    # "c" is a segment no rule names: it stands for every other key segment.
    keys = [".".join(k) for n in (1, 2, 3) for k in itertools.product("abc", repeat=n)]
    ambiguous = [key for key in keys if len(reference_rules(names, key)) > 1]
    try:
        schema = schema_of(body)
    except InvalidRequest as refused:
        assert ambiguous, refused.message
        assert "tie: both match" in refused.message
        return
    assert not ambiguous
    for key in keys:
        winner = schema.rule_for(key)
        assert ([winner.name] if winner else []) == reference_rules(names, key), key


# --- typed input --------------------------------------------------------------

TYPED = schema_of(
    '[keys."t.int"]\ntype = "integer"\n[keys."t.num"]\ntype = "number"\n'
    '[keys."t.str"]\ntype = "string"\n[keys."t.flag"]\ntype = "boolean"\n'
    '[keys."t.list"]\ntype = "list"\nitems = "integer"\n'
)


@given(st.integers(-(2**63), 2**64 - 1))
def test_an_integer_typed_as_text_reads_back_as_itself(number: int) -> None:
    """Any 64-bit integer's digits read back as that integer, for an integer and for a number key."""
    assert TYPED.parse_text("t.int", str(number)) == number
    assert TYPED.parse_text("t.num", f" {number} ") == number


@given(st.floats(allow_nan=False, allow_infinity=False))
def test_a_float_typed_as_text_reads_back_as_itself(number: float) -> None:
    """A float's repr reads back as the same float for a number key (digits alone stay an integer)."""
    assert TYPED.parse_text("t.num", repr(number)) == number


@given(st.text())
def test_a_string_key_keeps_the_text_as_typed(text: str) -> None:
    """For a string key no text is reinterpreted: not "1.10", not "true", not surrounding spaces."""
    assert TYPED.parse_text("t.str", text) == text


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**64 - 1) | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=5), inner, max_size=4),
    max_leaves=12,
)  # fmt: skip


@given(st.sampled_from(["t.int", "t.num", "t.str", "t.flag", "t.list"]), json_values)
def test_check_and_check_items_agree_on_every_value(key: str, value: object) -> None:
    """A value check() refuses is listed by check_items() with the same message, and one it accepts is not."""
    try:
        TYPED.check(key, value, "cli")
    except InvalidRequest as refused:
        assert [v.message for v in TYPED.check_items([item(key, value)])] == [refused.message]
    else:
        assert TYPED.check_items([item(key, value)]) == []


def test_a_value_shown_in_a_message_is_cut_without_rendering_it_whole() -> None:
    """A megabyte value reads as its first characters and '...', in every container."""
    huge = "x" * 1_000_000
    for value in (huge, [huge], {"k": huge}, [[1, 2]] * 100_000):
        shown = show_value(value)
        assert len(shown) == SHOWN_CHARACTERS and shown.endswith("...")


# --- schema check -------------------------------------------------------------

CHECKED = schema_of(
    '[unknown]\n"plant." = "refuse"\n"eds." = "warn"\n'
    '[keys."plant.rate"]\ntype = "integer"\nmax = 500\n'
    '[keys."eds.*.*"]\ntype = "table"\nwritable_by = ["eds"]\n'
    '[keys."eds.password"]\ntype = "string"\nmin = 8\nsecret = true\n'
)


def test_schema_check_lists_every_violation_sorted_by_key() -> None:
    """Bad values, foreign writers, unknown keys and plain-text secrets are each reported once, by severity."""
    found = CHECKED.check_items(
        [
            item("plant.rtae", 1),
            item("plant.rate", 900),
            item("eds.M.FI101", 1, source="cli"),
            item("eds.newthing", 1),
            item("eds.password", "hunter22!", secret=False),
            item("scratch.x", 1),
            item(SCHEMA_KEY, "[schema]\nformat = 1\n"),
        ]
    )
    summary = [(v.key, v.severity, v.rule) for v in found]
    assert summary == [
        ("eds.M.FI101", "error", "eds.*.*"),
        ("eds.M.FI101", "error", "eds.*.*"),
        ("eds.newthing", "warning", ""),
        ("eds.password", "warning", "eds.password"),
        ("plant.rate", "error", "plant.rate"),
        ("plant.rtae", "error", ""),
    ]
    messages = [v.message for v in found]
    assert messages[0] == (
        "'eds.M.FI101' may be written only by source 'eds' (schema: eds.*.*); was written by source 'cli'"
    )
    assert "got 1" in messages[1]
    assert "stored in plain text, but the schema says it is a secret" in messages[3]
    assert messages[5].endswith("did you mean 'plant.rate'?")


def test_schema_check_judges_a_secret_by_all_but_its_hidden_value() -> None:
    """A secret shown as the placeholder is not called a bad string; a revealed one is judged, unshown."""
    assert CHECKED.check_items([item("eds.password", SECRET_PLACEHOLDER, secret=True)]) == []
    (short,) = CHECKED.check_items([item("eds.password", "short", secret=True)])
    assert short.message.endswith("got 5 characters") and "short" not in short.message.split("got")[1]


# --- the schema as a whole ------------------------------------------------------


def test_docs_list_every_rule_with_its_notes_and_the_policies() -> None:
    """schema docs: one row per rule (type, default, unit, description, secret/ttl/writers notes), then policies."""
    schema = schema_of(
        'description = "Plant keys."\n[unknown]\n"plant." = "refuse"\n'
        '[keys."plant.*.rate"]\ntype = "integer"\nmin = 0\nmax = 500\ndefault = 30\nunit = "m3/h"\n'
        'description = "Flow | setpoint\\nof a train."\n'
        '[keys."eds.*.*"]\ntype = "table"\nttl = 900\nwritable_by = ["eds"]\n'
        '[keys."eds.password"]\ntype = "string"\nsecret = true\n'
    )
    docs = schema.render_docs()
    assert docs.startswith("# Known keys\n\nPlant keys.\n")
    assert "| `plant.*.rate` | integer 0..500 | `30` | m3/h | Flow \\| setpoint of a train. |" in docs
    assert "Expires 900 s after its last write. Written only by `eds`." in docs
    assert "Secret: stored encrypted" in docs
    assert "- under `plant.`: refused\n- anywhere else: accepted\n" in docs
    assert "The schema knows no keys." in Schema().render_docs()


def test_with_text_replaces_one_text_and_a_bad_one_changes_nothing() -> None:
    """The hub's compile step: a new text gives a new schema; an invalid one raises and leaves the old intact."""
    before = schema_of('[keys."plant.rate"]\ntype = "integer"\n')
    after = before.with_text(SCHEMA_KEY, HEADER + '[keys."plant.rate"]\ntype = "string"\n')
    assert (before.rule_for("plant.rate").type, after.rule_for("plant.rate").type) == ("integer", "string")
    with pytest.raises(InvalidRequest) as refused:
        before.with_text(SCHEMA_KEY, HEADER + '[keys."plant.rate"]\ntype = "int"\n')
    assert refused.value.hint == LOAD_HINT
    assert before.rule_for("plant.rate").type == "integer"
    pump = before.with_text("statehub.schema.pump", '[schema]\nformat = 1\n[keys."speed"]\ntype = "number"\n')
    assert pump.rule_for("pump.speed").type == "number" and set(pump.texts) == {
        SCHEMA_KEY,
        "statehub.schema.pump",
    }
    assert pump.with_text(SCHEMA_KEY, None).rule_for("plant.rate") is None
    assert pump.with_text(SCHEMA_KEY, None).rule_for("pump.speed") is not None


def test_two_texts_for_one_schema_key_are_refused() -> None:
    """Files read from two places for one key (a data dir file and a store text) cannot both be compiled."""
    one = parse_schema(HEADER, origin="schema.toml")
    with pytest.raises(InvalidRequest, match="a second text for statehub.schema"):
        Schema([one, parse_schema(HEADER)])


def test_a_text_names_its_own_key() -> None:
    """schema apply picks the key from the text: a declared prefix makes a fragment, else the main schema."""
    assert schema_key_for('[schema]\nformat = 1\nprefix = "plant.north."\n') == "statehub.schema.plant.north"
    assert schema_key_for(HEADER) == SCHEMA_KEY
    assert schema_key_for("not toml [") == SCHEMA_KEY  # parse_schema then reports the line


def test_a_file_is_named_by_its_origin_in_errors() -> None:
    """Reading a file from disk, messages name the file rather than the schema key."""
    with pytest.raises(InvalidRequest) as refused:
        parse_schema(HEADER + '[keys."x"]\nttl = 0\n', origin="/srv/statehub/schema.toml")
    assert refused.value.message.startswith('/srv/statehub/schema.toml: [keys."x"]: ttl must be')


def test_the_shipped_defaults_are_a_schema_without_types() -> None:
    """clients/statehub/defaults.toml loads as a schema whose defaults are exactly what the waterfall reads."""
    path = Path(str(resources.files("statehub").joinpath("defaults.toml")))
    schema = load_schema({SCHEMA_KEY: path.read_text(encoding="utf-8")})
    assert schema.defaults() == load_defaults(path)
    assert {rule.type for rule in schema.rules()} == {"any"}
    assert schema.check("anything.at.all", [1], "cli") is None


def test_nested_defaults_flatten_as_the_waterfall_flattens_them() -> None:
    """A defaults file with nested and inline tables gives the same dotted keys as waterfall.flatten."""
    text = 'top = 1\n[plant]\nname = "M"\nlimits = { high = 12, low = 1 }\n[plant.pumps]\ncount = 3\n'
    assert load_schema({SCHEMA_KEY: text}).defaults() == flatten(tomllib.loads(text))


def test_an_unknown_key_refusal_says_what_to_do() -> None:
    """Refusing an unknown key carries a hint, for the CLI's second line."""
    with pytest.raises(InvalidRequest) as refused:
        CHECKED.check("plant.rtae", 1, "cli")
    assert "statehub schema apply" in refused.value.hint


def test_rules_serialize_for_json_output() -> None:
    """A rule turns into plain JSON (schema show --json), leaving out what it does not set."""
    rule = CHECKED.rule_for("eds.x.y")
    assert rule is not None
    assert json.loads(msgspec.json.encode(rule)) == {
        "name": "eds.*.*",
        "type": "table",
        "writable_by": ["eds"],
        "origin": SCHEMA_KEY,
    }


def test_the_benchmark_script_measures_every_case() -> None:
    """scripts/bench_schema.py runs (tiny counts) and reports a figure per case."""
    result = load_script("bench_schema").run(rules=8, count=10)
    assert result["rules"] == 8
    assert len(result["us_per_op"]) == 6 and all(v > 0 for v in result["us_per_op"].values())


def test_an_empty_schema_allows_everything_but_still_guards_its_own_keys() -> None:
    """No schema: any key, any value; a schema key must still hold text."""
    empty = Schema()
    assert empty.is_empty and empty.check("any.key", {"x": [1]}, "") is None
    with pytest.raises(InvalidRequest):
        empty.check(SCHEMA_KEY, 5, "cli")
