"""The schema commands: show, check, docs, apply; and typed input by the schema for `set`.

The schema is read from the hub (the mirror when it is down) through
``Client.schema()``; judging stays the hub's (docs/schema.md): `apply` checks
the file here first only so a mistake is reported before anything is sent.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from statehub.cli.base import echo, echo_json, reported, settings_of, warn_if_mirror, writing
from statehub.cli.options import JsonOption, add_command

if TYPE_CHECKING:
    from statehub import Client, Rule

# `schema check` exits with this when a stored value breaks the schema (the conflict code: state disagrees);
# warnings alone (unknown keys under a `warn` prefix, accepted by design) are listed and exit 0.
VIOLATIONS_EXIT = 4
# `schema apply` waits at most this long for the mirror to show the new schema (typed input reads it there).
MIRROR_WAIT_SECONDS = 5.0

schema_app = typer.Typer(
    help="The schema: which keys are known, their types, defaults, writers and ttl (docs/schema.md).",
    no_args_is_help=True,
)


def register(app: typer.Typer) -> None:
    add_command(schema_app, show)
    add_command(schema_app, check)
    add_command(schema_app, docs)
    add_command(schema_app, apply)
    app.add_typer(schema_app, name="schema")


def schema_value(client: Client, key: str, text: str) -> Any:
    """VALUE as typed for KEY, read by the key's type in the hub's schema; MISSING when the schema gives
    it no type (then `set` reads the text as it reads any untyped value, see cli/typed_value.py).

    A local hub's schema is read from its mirror, which costs `set` no extra
    request (a just-applied schema may be a moment behind: the hub judges the
    value when it arrives anyway); a remote hub is asked.
    """
    from statehub import MISSING, HubUnavailable, MirrorError, is_schema_key, load_schema

    try:
        if client.is_remote:
            schema = client.schema()
        else:
            items = client.read_mirror().items
            texts = {k: i.value for k, i in items.items() if is_schema_key(k) and isinstance(i.value, str)}
            schema = load_schema(texts)
    except (HubUnavailable, MirrorError):
        return MISSING
    rule = schema.rule_for(key)
    if is_schema_key(key) or rule is None or rule.type == "any":
        return MISSING
    return schema.parse_text(key, text)


def rule_dict(rule: Rule) -> dict[str, Any]:
    """A rule for --json: its fields, and what it allows in the words messages use."""
    import msgspec

    return {**msgspec.to_builtins(rule), "allows": rule.allows()}


def show(
    ctx: typer.Context,
    prefix: Annotated[str, typer.Argument(help="Only rules whose key or pattern starts with this.")] = "",
    as_json: JsonOption = False,
) -> None:
    """Show the schema in force: every rule under PREFIX, and the policy for keys it does not know."""
    settings = settings_of(ctx)
    with reported(settings.debug), settings.client() as client:
        schema = client.schema()
        problems = _schema_file_errors(client)
    rules = schema.rules(prefix)
    policies = {p: v for p, v in schema.policies.items() if p.startswith(prefix) or prefix.startswith(p)}
    if as_json:
        echo_json({"rules": [rule_dict(r) for r in rules], "unknown": policies, "texts": sorted(schema.texts), "errors": problems})
        return
    for problem in problems:
        echo(f"warning: schema file not applied: {problem}", err=True)
    if schema.is_empty:
        echo("no schema: every key is allowed (apply one with `statehub schema apply FILE`)")
        return
    for rule in rules:
        echo(_rule_line(rule))
    for where, policy in sorted(policies.items()):
        echo(f"unknown keys {'under ' + repr(where) if where else 'elsewhere'}: {policy}")
    if "" not in policies:
        echo("unknown keys elsewhere: allow")


def _rule_line(rule: Rule) -> str:
    from statehub import json_text

    parts = [f"{rule.name}: {rule.allows()}"]
    if rule.default is not None:
        parts.append(f"default {json_text(rule.default)}")
    if rule.unit:
        parts.append(rule.unit)
    if rule.secret:
        parts.append("secret")
    if rule.writable_by:
        parts.append("written only by " + ", ".join(rule.writable_by))
    if rule.ttl is not None:
        parts.append(f"ttl {rule.ttl:g} s")
    line = ", ".join(parts)
    return f"{line}  -- {rule.description}" if rule.description else line


def _schema_file_errors(client: Client) -> list[str]:
    from statehub import HubUnavailable

    try:
        return list(client.status().schema_errors)
    except HubUnavailable:
        return []


def check(ctx: typer.Context, as_json: JsonOption = False) -> None:
    """Judge every stored value by the schema and list what it disagrees with; exit 4 if any is an error.

    Stored values are not judged again when a schema changes, so this is how to
    find what a tightened schema disagrees with (and unknown keys under a `warn` prefix).
    """
    import msgspec

    settings = settings_of(ctx)
    with reported(settings.debug), settings.client() as client:
        schema = client.schema()
        listing = client.list()
        warn_if_mirror(listing.origin)
    found = schema.check_items(listing.items)
    if as_json:
        echo_json({"rev": listing.origin.rev, "violations": [msgspec.to_builtins(v) for v in found]})
    else:
        for violation in found:
            echo(f"{violation.severity}: {violation.message}")
    errors = sum(v.severity == "error" for v in found)
    if not as_json:
        echo(f"{len(listing.items)} keys checked: {_count(errors, 'error')}, {_count(len(found) - errors, 'warning')}", err=True)
    if errors:
        raise SystemExit(VIOLATIONS_EXIT)


def _await_mirror(client: Client, rev: int) -> None:
    """Return once the local mirror holds ``rev`` (bounded): a `set` right after reads the new types from it."""
    import time

    from statehub import MirrorError

    if client.is_remote:
        return
    deadline = time.monotonic() + MIRROR_WAIT_SECONDS
    while time.monotonic() < deadline:
        try:
            if client.read_mirror().rev >= rev:
                return
        except MirrorError:
            pass
        time.sleep(0.02)


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}{'' if number == 1 else 's'}"


def docs(ctx: typer.Context, as_json: JsonOption = False) -> None:
    """Print a markdown reference of every known key: type, default, unit, description."""
    settings = settings_of(ctx)
    with reported(settings.debug), settings.client() as client:
        schema = client.schema()
    if as_json:
        echo_json({"rules": [rule_dict(r) for r in schema.rules()], "unknown": schema.policies})
        return
    typer.echo(schema.render_docs(), nl=False)


def apply(
    ctx: typer.Context,
    file: Annotated[Path, typer.Argument(help="A schema TOML file (docs/schema.md); a fragment if it declares a prefix.")],
    as_json: JsonOption = False,
) -> None:
    """Make FILE the schema in force: checked here first, then written to its schema key.

    The write is an ordinary revision (published, in history, undone by
    `statehub rollback`), compare-and-set against the text you replaced, so two
    people applying at once cannot silently overwrite each other.
    """
    from statehub import NotFound, parse_schema, schema_key_for

    settings = settings_of(ctx)
    with reported(settings.debug):
        text = file.read_text(encoding="utf-8")
        key = schema_key_for(text)
        parsed = parse_schema(text, key, origin=str(file))  # exit 2 with the file's error: nothing sent
        with settings.client(source="schema") as client:
            schema = client.schema()
            schema.with_text(key, text)  # the files together: a tie or a nested prefix, before sending
            try:
                seen = client.get(key).item.rev
            except NotFound:
                seen = 0
            with writing():
                committed = client.set(key, text, expect=seen)
            _await_mirror(client, committed.rev)
    if as_json:
        echo_json({"key": key, "rev": committed.rev, "epoch": committed.epoch})
    else:
        echo(f"applied {file} as {key} at revision {committed.rev} ({len(parsed.rules)} rules)")
