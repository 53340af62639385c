"""What crosses NATS and MQTT between sites: subjects, message ids, headers and payloads.

docs/sites.md is the contract; this module is its Python form.  A site's
change travels as one JetStream message per changed key, on
``statehub.site.<site>.<key>``, with the id ``<site>:<epoch>:<rev>:<index>``
(JetStream drops a repeat inside its duplicate window) and a MessagePack
``SiteChange`` payload.  The parts of one site revision share ``rev`` and
carry ``index``/``count``, so the centre applies a revision whole.  ``prev``
chains the forwarded revisions: it is the revision forwarded just before this
one, which lets the centre tell a duplicate (``rev`` already applied) from a
gap (``prev`` not yet applied) whatever order a reconnect delivers them in.
"""

from __future__ import annotations

from typing import Any, Literal

import msgspec

from statehub import InvalidRequest, check_key

SITES_STREAM = "STATEHUB_SITES"
SITES_SUBJECTS = "statehub.site.>"
FLEET_STREAM = "STATEHUB_FLEET"
FLEET_SUBJECTS = "statehub.fleet.>"
HEARTBEAT_SUBJECTS = "statehub.heartbeat.>"  # core NATS, in no stream: a heartbeat matters only while fresh
DUPLICATE_WINDOW = 600.0  # seconds JetStream remembers message ids; the centre's link record covers the rest

RESYNC_HEADER = "Statehub-Resync"  # "1" on every part of a snapshot that replaces the site's subtree
FLEET_PREFIX = "fleet."  # owned by the centre, read-only at the sites
SITES_PREFIX = "sites."  # at the centre: sites.<site>.<key>
LINK_PREFIX = "statehub.link."  # at the centre: statehub.link.<site>, the follower's exactly-once record
FLEET_SOURCE = "fleet"  # the source of fleet keys written at a site

Op = Literal["set", "unset", "snapshot"]  # "snapshot": a chunk of a resync, its keys in ``entries``
SNAPSHOT_CHUNK_KEYS = 500  # keys in one message of a resync
SNAPSHOT_CHUNK_BYTES = (
    256 * 1024
)  # about this many bytes of values in one (JetStream's default limit is 1 MiB)


class SnapshotEntry(msgspec.Struct, kw_only=True, omit_defaults=True):
    """One key of a resync snapshot, as the site holds it."""

    key: str
    value: Any = None
    rev: int = 0  # the site revision that last changed it
    time: float = 0.0
    source: str = ""
    user: str = ""


class SiteChange(msgspec.Struct, kw_only=True, omit_defaults=True):
    """One part of one site revision: what one key did, or a chunk of the keys of a resync snapshot."""

    site: str
    epoch: str
    rev: int
    index: int
    count: int
    prev: int  # the revision forwarded before this one (0: none, or this is a resync)
    op: Op
    key: str = ""
    value: Any = None
    time: float = 0.0  # when the site committed it (a snapshot part: when the key last changed)
    source: str = ""
    user: str = ""
    entries: list[SnapshotEntry] = []  # a "snapshot" part: its keys (none: the site has no keys)


class Heartbeat(msgspec.Struct, kw_only=True):
    """An uplink's periodic word that it is linked, sent whether or not anything changed."""

    site: str
    epoch: str
    rev: int  # the uplink's cursor: every revision up to it acknowledged by JetStream
    hub_rev: int  # the site hub's revision as the uplink last saw it
    time: float  # when the uplink sent it (the site's clock)
    every: float  # seconds until the next one
    hub_down: str = ""  # why the site's hub is not answering the uplink, if it is not


class LinkHeartbeat(msgspec.Struct, kw_only=True):
    """The last heartbeat of a site, as its link record holds it."""

    received: float  # when the centre received it (the centre's clock: compare with now)
    sent: float  # when the site sent it (the site's clock)
    rev: int
    hub_rev: int
    every: float
    hub_down: str = ""


class LinkRecord(msgspec.Struct, kw_only=True):
    """The centre's record of one site (``statehub.link.<site>``): the last site revision applied."""

    site: str
    epoch: str
    rev: int
    time: float  # the site's commit time of that revision
    applied: float  # when the centre applied it
    resyncs: int = 0
    heartbeat: LinkHeartbeat | None = None  # the site's last heartbeat (None: none received yet)


def check_site(site: str) -> None:
    """A site name is one key segment: it becomes ``sites.<site>.`` and a subject token."""
    check_key(site)
    if "." in site:
        raise InvalidRequest(f"invalid site name {site!r}: a site name is one key segment, without '.'")


def site_subject(site: str, key: str) -> str:
    """The subject of a change of ``key`` at ``site`` (``key`` empty: a resync of a site with no keys)."""
    return f"statehub.site.{site}.{key}" if key else f"statehub.site.{site}"


def heartbeat_subject(site: str) -> str:
    return f"statehub.heartbeat.{site}"


def fleet_subject(key: str) -> str:
    return f"statehub.fleet.{key}"


def key_of_fleet_subject(subject: str) -> str:
    return subject.removeprefix("statehub.fleet.")


def message_id(change: SiteChange) -> str:
    """JetStream's de-duplication id: the same part of the same revision always gets the same id."""
    return f"{change.site}:{change.epoch}:{change.rev}:{change.index}"


def central_key(site: str, key: str) -> str:
    return f"{SITES_PREFIX}{site}.{key}"


def link_key(site: str) -> str:
    return f"{LINK_PREFIX}{site}"


def encode(change: SiteChange) -> bytes:
    return msgspec.msgpack.encode(change)


def encode_entry(entry: SnapshotEntry) -> bytes:
    return msgspec.msgpack.encode(entry)


def decode(payload: bytes) -> SiteChange:
    return msgspec.msgpack.decode(payload, type=SiteChange)


def encode_heartbeat(heartbeat: Heartbeat) -> bytes:
    return msgspec.msgpack.encode(heartbeat)


def decode_heartbeat(payload: bytes) -> Heartbeat:
    return msgspec.msgpack.decode(payload, type=Heartbeat)


def decode_link(value: Any) -> LinkRecord | None:
    """The link record stored at the centre (None when the value is not one: start afresh)."""
    try:
        return msgspec.convert(value, LinkRecord)
    except msgspec.ValidationError:
        return None


# --- MQTT ---------------------------------------------------------------------------------------


def mqtt_topic(site: str, key: str) -> str:
    """``statehub/<site>/<key with '.' as '/'>``; a '/' inside a segment is ``%2F``, '%' is ``%25``."""
    segments = (segment.replace("%", "%25").replace("/", "%2F") for segment in key.split("."))
    return f"statehub/{site}/" + "/".join(segments)


def mqtt_state_topic(site: str) -> str:
    return f"statehub/{site}/$state"


def mqtt_heartbeat_topic(site: str) -> str:
    return f"statehub/{site}/$heartbeat"


def mqtt_heartbeat_payload(heartbeat: Heartbeat) -> bytes:
    """``{"rev", "hub_rev", "time", "every", "hub_down"}``: the heartbeat as MQTT tools read it (JSON)."""
    return msgspec.json.encode(
        {
            "rev": heartbeat.rev,
            "hub_rev": heartbeat.hub_rev,
            "time": heartbeat.time,
            "every": heartbeat.every,
            "hub_down": heartbeat.hub_down,
        }
    )


def mqtt_site_tree(site: str) -> str:
    """Every topic of the site: its keys and its ``$`` topics (keys never hold a '$')."""
    return f"statehub/{site}/#"


def mqtt_sync_topic(site: str) -> str:
    """Where the uplink sends itself a marker when it reads back what the broker retains (never retained)."""
    return f"statehub/{site}/$sync"


def mqtt_payload(value: Any, rev: int, when: float, source: str, user: str) -> bytes:
    return msgspec.json.encode({"value": value, "rev": rev, "time": when, "source": source, "user": user})
