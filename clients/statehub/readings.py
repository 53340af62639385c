"""What a read returns: the item(s) and where they came from (the hub, or the mirror and how stale)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from statehub.display import age_text
from statehub.hub.protocol import Item

if TYPE_CHECKING:
    from statehub.hub.errors import HubUnavailable
    from statehub.hub.mirror import MirrorState


@dataclass(frozen=True)
class Origin:
    """Where a read came from: the hub itself, or the mirror file when the hub was down."""

    from_mirror: bool
    rev: int | None
    epoch: str | None = None
    age: float | None = None  # seconds since the mirror was written
    # Why the hub was not asked (from the mirror only), and what to do about it: the HubUnavailable's words.
    hub_problem: str = ""
    hint: str = ""

    def describe(self) -> str:
        if not self.from_mirror:
            return f"from the hub at revision {self.rev}" if self.rev is not None else "from the hub"
        return f"from the mirror at revision {self.rev}, {age_text(self.age or 0.0)} old"


@dataclass(frozen=True)
class Reading:
    """One key's item and where it was read from."""

    item: Item
    origin: Origin

    @property
    def value(self) -> Any:
        return self.item.value


@dataclass(frozen=True)
class Listing:
    """Items under a prefix and where they were read from."""

    items: list[Item]
    origin: Origin


def mirror_origin(mirror: MirrorState, down: HubUnavailable | None = None) -> Origin:
    """A read from ``mirror``, made because of ``down``."""
    problem, hint = (down.message, down.hint) if down is not None else ("", "")
    return Origin(from_mirror=True, rev=mirror.rev, epoch=mirror.epoch, age=mirror.age, hub_problem=problem, hint=hint)
