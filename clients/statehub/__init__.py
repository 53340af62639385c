"""statehub: the Python client of the statehub hub.

    from statehub import Client
    with Client() as hub:
        hub.set("plant.rate", 30)
        print(hub.get("plant.rate").value)
        for event in hub.subscribe("plant."):
            print(event)

Everything a program (or a front end: the CLI, the GUI, ``sync-file``, the EDS
ingester) needs is a name in ``__all__``: the Client, every type its methods
return, the subscription events, the error tree, the key and value rules, and
the display helpers.  The modules behind them are private; ``tests/test_public_api.py``
pins this list and holds the front ends to it (docs/clients.md, "What a front end may import").

Public names are loaded on first use, so importing statehub costs next to nothing.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_WHERE = {
    # the client and what its methods return
    "Client": "statehub.client",
    "Reading": "statehub.readings",
    "Listing": "statehub.readings",
    "Origin": "statehub.readings",
    "Queued": "statehub.client",
    "new_request_id": "statehub.client",
    "Committed": "statehub.hub.protocol",
    "BatchCommitted": "statehub.hub.protocol",
    "Item": "statehub.hub.protocol",
    "Items": "statehub.hub.protocol",
    "Version": "statehub.hub.protocol",
    "HubStatus": "statehub.hub.protocol",
    "Rotated": "statehub.hub.protocol",
    "ConflictDetail": "statehub.hub.protocol",
    "MirrorState": "statehub.hub.mirror",
    "iso_time": "statehub.hub.mirror",
    # writes
    "Op": "statehub.hub.protocol",
    "SiteOrigin": "statehub.hub.protocol",
    "write_ops": "statehub.hub.protocol",
    # subscriptions
    "Subscription": "statehub.subscription",
    "SubscriptionThread": "statehub.subscription",
    "Event": "statehub.subscription",
    "Update": "statehub.replica",
    "Synced": "statehub.replica",
    "CaughtUp": "statehub.replica",
    "HubDown": "statehub.subscription",
    "Changed": "statehub.hub.protocol",
    "ChangePage": "statehub.hub.protocol",
    "apply_change": "statehub.replica",
    "item_as_change": "statehub.replica",
    # the waterfall
    "Explanation": "statehub.waterfall",
    "MISSING": "statehub.waterfall",
    "env_name": "statehub.waterfall",
    "parse_text_value": "statehub.waterfall",
    # the schema and liveness
    "Schema": "statehub.hub.schema",
    "Rule": "statehub.hub.schema",
    "Violation": "statehub.hub.schema",
    "load_schema": "statehub.hub.schema",
    "parse_schema": "statehub.hub.schema",
    "schema_key_for": "statehub.hub.schema",
    "is_schema_key": "statehub.hub.schema",
    "SCHEMA_KEY": "statehub.hub.schema",
    "Keepalive": "statehub.keepalive",
    # where things are
    "Layout": "statehub.hub.paths",
    "resolve_data_dir": "statehub.hub.paths",
    "client_key_dir": "statehub.remote",
    "make_client_keys": "statehub.remote",
    # rules and limits
    "check_key": "statehub.hub.rules",
    "check_prefix": "statehub.hub.rules",
    "check_value": "statehub.hub.rules",
    "PROTOCOL_VERSION": "statehub.hub.protocol",
    "MAX_KEY_LENGTH": "statehub.hub.protocol",
    "MAX_TXN_OPS": "statehub.hub.protocol",
    "MAX_BATCH_WRITES": "statehub.hub.protocol",
    "MAX_BATCH_OPS": "statehub.hub.protocol",
    "MAX_HISTORY_LIMIT": "statehub.hub.protocol",
    "MAX_MESSAGE_BYTES": "statehub.hub.protocol",
    "SECRET_PLACEHOLDER": "statehub.hub.protocol",
    # errors
    "StatehubError": "statehub.hub.errors",
    "InvalidRequest": "statehub.hub.errors",
    "NotFound": "statehub.hub.errors",
    "ConflictError": "statehub.hub.errors",
    "ProtocolError": "statehub.hub.errors",
    "StorageError": "statehub.hub.errors",
    "HubUnavailable": "statehub.hub.errors",
    "MirrorError": "statehub.hub.errors",
    "OutcomeUnknown": "statehub.hub.errors",
    # display
    "value_text": "statehub.display",
    "json_text": "statehub.display",
    "who_text": "statehub.display",
    "site_text": "statehub.display",
    "when_text": "statehub.display",
    "local_when_text": "statehub.display",
    "age_text": "statehub.display",
}

# A literal list, which is what type checkers read; tests/test_public_api.py holds it equal to _WHERE.
__all__ = [
    "__version__",
    "Client",
    "Reading",
    "Listing",
    "Origin",
    "Queued",
    "new_request_id",
    "Committed",
    "BatchCommitted",
    "Item",
    "Items",
    "Version",
    "HubStatus",
    "Rotated",
    "ConflictDetail",
    "MirrorState",
    "iso_time",
    "Op",
    "SiteOrigin",
    "write_ops",
    "Subscription",
    "SubscriptionThread",
    "Event",
    "Update",
    "Synced",
    "CaughtUp",
    "HubDown",
    "Changed",
    "ChangePage",
    "apply_change",
    "item_as_change",
    "Explanation",
    "MISSING",
    "env_name",
    "parse_text_value",
    "Schema",
    "Rule",
    "Violation",
    "load_schema",
    "parse_schema",
    "schema_key_for",
    "is_schema_key",
    "SCHEMA_KEY",
    "Keepalive",
    "Layout",
    "resolve_data_dir",
    "client_key_dir",
    "make_client_keys",
    "check_key",
    "check_prefix",
    "check_value",
    "PROTOCOL_VERSION",
    "MAX_KEY_LENGTH",
    "MAX_TXN_OPS",
    "MAX_BATCH_WRITES",
    "MAX_BATCH_OPS",
    "MAX_HISTORY_LIMIT",
    "MAX_MESSAGE_BYTES",
    "SECRET_PLACEHOLDER",
    "StatehubError",
    "InvalidRequest",
    "NotFound",
    "ConflictError",
    "ProtocolError",
    "StorageError",
    "HubUnavailable",
    "MirrorError",
    "OutcomeUnknown",
    "value_text",
    "json_text",
    "who_text",
    "site_text",
    "when_text",
    "local_when_text",
    "age_text",
]


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'statehub' has no attribute {name!r}")
    return getattr(import_module(module), name)


def __dir__() -> list[str]:
    return sorted(__all__)


if TYPE_CHECKING:
    from statehub.client import Client, Queued, new_request_id
    from statehub.display import (
        age_text,
        json_text,
        local_when_text,
        site_text,
        value_text,
        when_text,
        who_text,
    )
    from statehub.hub.errors import (
        ConflictError,
        HubUnavailable,
        InvalidRequest,
        MirrorError,
        NotFound,
        OutcomeUnknown,
        ProtocolError,
        StatehubError,
        StorageError,
    )
    from statehub.hub.mirror import MirrorState, iso_time
    from statehub.hub.paths import Layout, resolve_data_dir
    from statehub.hub.protocol import (
        MAX_BATCH_OPS,
        MAX_BATCH_WRITES,
        MAX_HISTORY_LIMIT,
        MAX_KEY_LENGTH,
        MAX_MESSAGE_BYTES,
        MAX_TXN_OPS,
        PROTOCOL_VERSION,
        SECRET_PLACEHOLDER,
        BatchCommitted,
        Changed,
        ChangePage,
        Committed,
        ConflictDetail,
        HubStatus,
        Item,
        Items,
        Op,
        Rotated,
        SiteOrigin,
        Version,
        write_ops,
    )
    from statehub.hub.rules import check_key, check_prefix, check_value
    from statehub.hub.schema import (
        SCHEMA_KEY,
        Rule,
        Schema,
        Violation,
        is_schema_key,
        load_schema,
        parse_schema,
        schema_key_for,
    )
    from statehub.keepalive import Keepalive
    from statehub.readings import Listing, Origin, Reading
    from statehub.remote import client_key_dir, make_client_keys
    from statehub.replica import CaughtUp, Synced, Update, apply_change, item_as_change
    from statehub.subscription import Event, HubDown, Subscription, SubscriptionThread
    from statehub.waterfall import MISSING, Explanation, env_name, parse_text_value
