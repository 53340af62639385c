"""Which plant a point belongs to, and whether its key drops the ``.UNIT@NETWORK`` suffix.

For each point, the first of these that names a plant wins:

1. ``--plant NAME`` (for every point of the ingest);
2. the setting ``eds.plants.<UNIT-NET>`` of the point's IESS suffix, e.g.
   ``eds.plants.UNIT1-NET1 = "stiles"`` (waterfall: ``STATEHUB_EDS__PLANTS__UNIT1_NET1``,
   the hub, the shipped defaults, which name Maxson's ``UNIT0@NET0`` and Stiles'
   ``UNIT1@NET1``);
3. the point map's ``zd`` for the point;
4. the setting ``eds.plant``;
5. the suffix itself: ``UNIT1@NET1`` is the plant ``unit1-net1``.

A key drops the suffix when it is the plant's own: no setting gives the suffix
to another plant.  So ``--plant maxson`` on Stiles' points keeps it
(``eds.maxson.FI-405/415=UNIT1-NET1``) and two plants' tags never share a key.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from statehub import NotFound
from statehub.eds.keys import default_plant, plant_segment, suffix_slug

if TYPE_CHECKING:
    from statehub import Client, Explanation

SUFFIX_SETTING = "eds.plants."  # + UNIT1-NET1
DEFAULT_SETTING = "eds.plant"


@dataclass(frozen=True)
class Setting:
    """A plant name read from the waterfall, and where it came from (for the output)."""

    plant: str
    where: str


@dataclass(frozen=True)
class Placement:
    """Where one point is filed: its plant segment, why, and whether its key keeps its suffix."""

    plant: str
    why: str
    keeps_suffix: bool


@dataclass(frozen=True)
class Plants:
    """The plant rules of one ingest: ``--plant``, the suffix settings and ``eds.plant``."""

    forced: str | None = None
    by_suffix: Mapping[str, Setting] = field(default_factory=dict)
    default: Setting | None = None

    def place(self, suffix: str | None, zd: str | None) -> Placement | None:
        """The placement of a point with this IESS suffix and map zd; None when nothing names its plant.

        Raises ValueError for a plant name that makes no key segment.
        """
        configured = self.by_suffix.get(suffix) if suffix else None
        if self.forced:
            plant, why = plant_segment(self.forced), "--plant"
        elif configured is not None:
            plant, why = plant_segment(configured.plant), configured.where
        elif zd:
            plant, why = plant_segment(zd), "the point map's zd"
        elif self.default is not None:
            plant, why = plant_segment(self.default.plant), self.default.where
        elif suffix is not None:
            plant = default_plant(suffix)
            why = f"its suffix {suffix} (no setting {SUFFIX_SETTING}{suffix_slug(suffix)})"
        else:
            return None
        keeps_suffix = configured is not None and plant_segment(configured.plant) != plant
        return Placement(plant, why, keeps_suffix)


def read_plants(client: Client, forced: str | None, suffixes: Iterable[str]) -> Plants:
    """The plant settings this ingest needs, read through the waterfall now (one lookup per suffix)."""
    by_suffix: dict[str, Setting] = {}
    for suffix in sorted(set(suffixes)):
        found = _setting(client, SUFFIX_SETTING + suffix_slug(suffix))
        if found is not None:
            by_suffix[suffix] = found
    return Plants(forced=forced or None, by_suffix=by_suffix, default=_setting(client, DEFAULT_SETTING))


def _setting(client: Client, key: str) -> Setting | None:
    try:
        explanation = client.explain(key)
    except NotFound:
        return None
    if explanation.layer is None or not isinstance(explanation.value, str) or not explanation.value.strip():
        return None
    return Setting(explanation.value.strip(), _where(explanation))


def _where(found: Explanation) -> str:
    if found.layer == "environment":
        return f"${found.env_var}"
    if found.layer == "stored":
        return f"the setting {found.key}"
    return f"the default {found.key}"
