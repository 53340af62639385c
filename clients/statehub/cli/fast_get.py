"""``statehub get`` without typer: scripts call it in loops, so its start-up is what they wait for.

``statehub get KEY [--json]``, with ``--data-dir D`` and ``--timeout T`` before or
after ``get``, is recognised here
and answered without importing typer (whose parser also pulls in pydantic),
which is most of the CLI's start-up.  Any other form (help, other options,
other commands) goes to typer, which gives the same result, only slower; the
``get`` command itself calls ``print_value`` below, so both print alike.
"""

from __future__ import annotations

import os

from statehub.cli.base import Settings, echo, echo_json, item_dict, origin_dict, reported, warn_if_mirror


def print_value(settings: Settings, key: str, as_json: bool, *, at_rev: int | None = None) -> None:
    """Print KEY's value (or its item as JSON), from the mirror with a warning when the hub is down.

    With ``at_rev``, the value right after that revision, from the hub's history.
    """
    from statehub import site_text, value_text

    with reported(settings.debug, as_json=as_json), settings.client() as client:
        reading = client.get(key, at_rev=at_rev)
        warn_if_mirror(reading.origin)
        if as_json:
            echo_json({**item_dict(reading.item), **origin_dict(reading.origin)})
        else:
            echo(value_text(reading.value))
            if reading.item.origin is not None:  # on stderr: stdout stays the value alone, for scripts
                echo(f"({site_text(reading.item.origin)})", err=True)


def fast_get(args: list[str]) -> int | None:
    """Run ``args`` if they are a plain ``get``, returning the exit code; None for anything else."""
    options: dict[str, str | None] = {"--data-dir": os.environ.get("STATEHUB_DATA_DIR") or None, "--timeout": "0.5"}
    words: list[str] = []
    index = 0
    while index < len(args):
        if args[index] in options and index + 1 < len(args):
            options[args[index]] = args[index + 1]
            index += 2
        else:
            words.append(args[index])
            index += 1
    as_json = words[2:] == ["--json"]
    if not (len(words) in (2, 3) and words[0] == "get" and not words[1].startswith("-")):
        return None
    if len(words) == 3 and not as_json:
        return None
    try:
        timeout = float(options["--timeout"] or "")
    except ValueError:
        return None
    if not timeout >= 0.01:
        return None
    try:
        print_value(Settings(options["--data-dir"], timeout), words[1], as_json)
    except SystemExit as done:
        return int(done.code or 0)
    return 0
