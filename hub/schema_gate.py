"""The schema at the store's door: the active schema, and the judgment of each op of a write.

The store (on the store thread) holds one compiled ``Schema``, read from the
schema keys it stores when it opens and replaced when a write to a schema key
commits.  Every write of every path (set, txn, batch, import, rollback,
restore-by-txn, queued writes, sync-file, the EDS ingester) reaches
``Store.commit``, so judging there is judging everywhere: no client can go
around it.  The order per op is docs/schema.md's ("What the hub does per op").
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

import msgspec

from statehub.hub.errors import InvalidRequest
from statehub.hub.protocol import Op
from statehub.hub.records import Entry
from statehub.hub.schema import SCHEMA_KEY, Schema, is_schema_key, load_schema

log = logging.getLogger(__name__)

NO_SCHEMA = Schema()


def stored_schema(entries: Iterable[Entry]) -> Schema:
    """The schema made of the stored schema keys (``entries`` under ``statehub.schema``).

    Stored texts were judged when written; one that no longer compiles (a store
    restored from elsewhere) is logged and the hub runs without a schema rather
    than refusing to start.
    """
    texts: dict[str, str] = {}
    for entry in entries:
        if is_schema_key(entry.key) and not entry.is_secret:
            text = msgspec.msgpack.decode(entry.blob)
            if isinstance(text, str):
                texts[entry.key] = text
    try:
        return load_schema(texts)
    except InvalidRequest as exc:
        log.error("the stored schema does not compile, so no schema is enforced: %s", exc.message)
        return NO_SCHEMA


def schema_after(schema: Schema, ops: list[Op], source: str) -> Schema:
    """The schema a write's own schema ops make (rule 2 of docs/schema.md): the one its other ops meet.

    A schema key holds the schema's TOML text, never a secret; its content is
    judged by compiling it with the others (InvalidRequest with the load error).
    """
    for op in ops:
        if op.key.startswith(SCHEMA_KEY) and is_schema_key(op.key):
            schema.check(op.key, op.value, source, op.op, secret=op.secret != "")
            schema = schema.with_text(op.key, op.value if op.op == "set" else None)
    return schema


def has_ttl_rules(schema: Schema) -> bool:
    """Whether some rule gives its keys a lifetime (then every key must be looked at for one)."""
    return any(rule.ttl is not None for rule in schema.rules())
