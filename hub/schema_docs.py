"""The schema as a markdown reference (``statehub schema docs``): one table row per known key."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from statehub.hub.schema_types import Rule, show_number, show_value

POLICY_WORDS = {
    "allow": "accepted",
    "warn": "accepted, and reported by `statehub schema check`",
    "refuse": "refused",
}


def render_docs(description: str, rules: Sequence[Rule], policies: Mapping[str, str]) -> str:
    """Markdown: the schema's description, a table of every key or pattern, then the unknown-key policies."""
    lines = ["# Known keys", ""]
    if description:
        lines += [description.strip(), ""]
    if not rules:
        lines += ["The schema knows no keys.", ""]
    else:
        lines += [
            "`*` stands for one segment of a key.",
            "",
            "| key | type | default | unit | description |",
            "|---|---|---|---|---|",
        ]
        lines += [_row(rule) for rule in rules]
        lines.append("")
    lines += ["## Keys the schema does not know", ""]
    for prefix in sorted(policies):
        where = f"under `{prefix}`" if prefix else "anywhere else"
        lines.append(f"- {where}: {POLICY_WORDS[policies[prefix]]}")
    if "" not in policies:
        lines.append(f"- {'anywhere else' if policies else 'anywhere'}: accepted")
    return "\n".join(lines) + "\n"


def _row(rule: Rule) -> str:
    default = "" if rule.default is None else f"`{_cell(show_value(rule.default))}`"
    cells = [f"`{rule.name}`", _cell(rule.allows()), default, _cell(rule.unit), _cell(_about(rule))]
    return "| " + " | ".join(cells) + " |"


def _about(rule: Rule) -> str:
    """The description, then what else a reader must know: secret, liveness, who may write."""
    notes = [rule.description.strip()] if rule.description.strip() else []
    if rule.secret:
        notes.append("Secret: stored encrypted, shown as `<secret>`.")
    if rule.ttl is not None:
        notes.append(f"Expires {show_number(rule.ttl)} s after its last write.")
    if rule.writable_by:
        notes.append("Written only by " + ", ".join(f"`{name}`" for name in rule.writable_by) + ".")
    return " ".join(notes)


def _cell(text: str) -> str:
    """Text safe inside a markdown table cell: one line, no bare column bars."""
    return " ".join(text.split()).replace("|", "\\|")
