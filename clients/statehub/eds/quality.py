"""EDS quality: the raw letter, the alarm word, and the normalised status dashboards colour by.

Every reading keeps what EDS said (``quality``: the letter, ``alarm``: the
alarm word, when the export has one) and gets a ``status`` of ``good``,
``uncertain`` or ``bad``, so a dashboard colours bad values and an alarm keys on
one field whatever the source.  The mapping (docs/eds.md, "Quality"):

    G  good          the value is valid                        -> good
    U  uncertain     may be usable, not guaranteed accurate    -> uncertain
    S  substituted   entered by hand or filled in              -> uncertain
    Q  questionable  fails some validation                     -> uncertain
    B  bad           the value is invalid                      -> bad
    N  no data       no value available                        -> bad

A sample without a value is ``bad`` whatever its letter.  Each set bit of the
alarm word (Ovation's alarm types) carries a letter of its own; the status is
the worst of the sample's letter and those of its alarm bits, and the record
lists the alarms by name.  CSV exports carry no quality: their status is null
(unknown), never a guess.
"""

from __future__ import annotations

from typing import Literal

Status = Literal["good", "uncertain", "bad"]

LETTERS: dict[str, Status] = {
    "G": "good",
    "U": "uncertain",
    "S": "uncertain",
    "Q": "uncertain",
    "B": "bad",
    "N": "bad",
}
QUALITY_LETTERS = frozenset(LETTERS)

# The Ovation alarm word: each bit, its alarm type and the quality letter it implies.
ALARM_BITS: tuple[tuple[int, str, str], ...] = (
    (1 << 0, "RETURN", "G"),
    (1 << 1, "SENSOR", "B"),
    (1 << 2, "HIGH", "G"),
    (1 << 3, "HI_WRS", "G"),
    (1 << 4, "HI_BET", "G"),
    (1 << 5, "HI_UDA", "G"),
    (1 << 6, "HI_WRS_UDA", "G"),
    (1 << 7, "HI_BET_UDA", "G"),
    (1 << 8, "LOW", "G"),
    (1 << 9, "LOW_WRS", "G"),
    (1 << 10, "LOW_BET", "G"),
    (1 << 11, "LOW_UDA", "G"),
    (1 << 12, "LOW_WRS_UDA", "G"),
    (1 << 13, "LOW_BET_UDA", "G"),
    (1 << 14, "SP_ALM", "B"),
    (1 << 15, "TIME_OUT", "U"),
    (1 << 16, "SID_ALM", "U"),
    (1 << 17, "ALARM", "B"),
    (1 << 18, "ST_CHG", "G"),
    (1 << 19, "INCR_ALARM", "G"),
    (1 << 20, "HIGH_HIGH", "G"),
    (1 << 21, "LOW_LOW", "G"),
    (1 << 22, "DEVICE", "U"),
)
MAX_ALARM_WORD = (1 << 32) - 1

_RANK: dict[Status, int] = {"good": 0, "uncertain": 1, "bad": 2}


def status_of(letter: str | None, value: float | None, alarm: int | None = None) -> Status | None:
    """The normalised status of a sample; None when the export says nothing about quality."""
    if value is None:
        return "bad"
    found: list[Status] = [LETTERS[letter]] if letter is not None else []
    if alarm:
        found += [LETTERS[implied] for bit, _name, implied in ALARM_BITS if alarm & bit]
    if not found:
        return None
    return max(found, key=_RANK.__getitem__)


def alarm_names(alarm: int) -> list[str]:
    """The alarm types set in an alarm word, in bit order (unknown bits as ``BIT<n>``)."""
    names = [name for bit, name, _implied in ALARM_BITS if alarm & bit]
    known = 0
    for bit, _name, _implied in ALARM_BITS:
        known |= bit
    names += [f"BIT{n}" for n in range(32) if alarm & (1 << n) and not known & (1 << n)]
    return names


def parse_alarm_word(text: str) -> int:
    """An alarm word written as a decimal (or 0x hex) integer; raises ValueError naming the text."""
    stripped = text.strip()
    try:
        word = int(stripped, 16) if stripped.lower().startswith("0x") else int(stripped)
    except ValueError:
        raise ValueError(f"alarm word {text!r} is not an integer") from None
    if not 0 <= word <= MAX_ALARM_WORD:
        raise ValueError(f"alarm word {text!r} is outside 0..{MAX_ALARM_WORD}")
    return word
