"""Readable keys: a point's latest reading lives under the name a person knows it by.

    eds.<plant>.<tag>                eds.stiles.FI-405/415            FI-405/415.UNIT1@NET1 of Stiles
    eds.<plant>.<tag>=<unit-net>     eds.maxson.FI-405/415=UNIT1-NET1 the same point filed under Maxson
    eds.<plant>.<name>               eds.maxson.2308                  a point known only by its SID

An Ovation IESS is ``TAG.UNIT@NETWORK``.  The key holds the tag (the IDCS name
on the plant's drawings) and drops the ``.UNIT@NETWORK`` suffix when it is the
plant's own; a point filed under another plant keeps it, written ``=UNIT-NET``
(``@`` is no key character).  Which plant a point belongs to, and whose suffix
is whose, is ``statehub.eds.plants``.

Plant names become lower-case segments (``Maxson``, ``MAXSON`` and ``maxson``
are one plant): every run of characters other than letters, digits, ``_`` and
``-`` becomes one ``-`` (``M.C. Stiles`` is ``m-c-stiles``).  In a tag, every
character a key cannot hold (anything but letters, digits, ``_ - / =``) becomes
``_``.  This is readable, not reversible: the record's ``point`` field holds
the full name, and an ingest refuses to file two different points under one
key (the hub's record names the point it holds).
"""

from __future__ import annotations

import re

from statehub import MAX_KEY_LENGTH

ROOT = "eds"

_SUFFIX = re.compile(r"[A-Za-z0-9_]+@[A-Za-z0-9_]+")
_NOT_IN_TAG = re.compile(r"[^A-Za-z0-9_/=-]")
_NOT_IN_PLANT = re.compile(r"[^a-z0-9_-]+")


def split_iess(name: str) -> tuple[str, str | None]:
    """(tag, suffix) of an IESS name: ``FI-405/415.UNIT1@NET1`` -> (``FI-405/415``, ``UNIT1@NET1``).

    A name without a ``.UNIT@NETWORK`` ending (a SID, a tag) is its own tag, with no suffix.
    """
    tag, dot, suffix = name.rpartition(".")
    if dot and tag and _SUFFIX.fullmatch(suffix):
        return tag, suffix
    return name, None


def suffix_slug(suffix: str) -> str:
    """A suffix as key characters: ``UNIT1@NET1`` -> ``UNIT1-NET1`` (the setting eds.plants.UNIT1-NET1)."""
    return suffix.replace("@", "-")


def plant_segment(name: str) -> str:
    """A plant name as its key segment: lower case, other characters folded to ``-``; ValueError if none is left."""
    segment = _NOT_IN_PLANT.sub("-", name.strip().lower()).strip("-")
    if not segment:
        raise ValueError(f"plant name {name!r} has no letter or digit to name a key with")
    return segment


def default_plant(suffix: str) -> str:
    """The plant of a suffix no setting names: ``UNIT1@NET1`` -> ``unit1-net1``."""
    return plant_segment(suffix_slug(suffix))


def tag_segment(tag: str) -> str:
    """A tag (or SID, or given name) as a key segment: characters a key cannot hold become ``_``."""
    return _NOT_IN_TAG.sub("_", tag)


def point_key(plant: str, tag: str, foreign_suffix: str | None = None) -> str:
    """The key of a point: ``eds.<plant>.<tag>``, or ``...<tag>=<UNIT-NET>`` when its suffix is another plant's.

    ``plant`` is a plant segment (``plant_segment``).  Raises ValueError when the
    key would be longer than keys may be.
    """
    segment = tag_segment(tag)
    if foreign_suffix is not None:
        segment += "=" + suffix_slug(foreign_suffix)
    key = f"{ROOT}.{plant}.{segment}"
    if len(key) > MAX_KEY_LENGTH:
        raise ValueError(
            f"the key for point {tag!r} of plant {plant!r} would be {len(key)} characters; the limit is {MAX_KEY_LENGTH}"
        )
    return key


def plant_prefix(plant: str) -> str:
    """The prefix of every key of one plant (for listing them in one request)."""
    return f"{ROOT}.{plant}."
