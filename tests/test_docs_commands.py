"""Every command the docs show parses: README.md and docs/*.md cannot drift from the command line.

Commands are taken from fenced code blocks (lines starting with ``statehub`` or
``statehub-rs``, after a ``$`` prompt or ``VAR=value`` prefixes): each must parse
exactly as the CLI parses it (statehub.cli.argv.dry_parse), without running.
Inline code spans that start with ``statehub `` name a command and some of its
options in prose (`statehub get`, `statehub watch --since`), so for them the
command and every option named must exist.  For ``statehub-rs`` the command's
``--help`` must list every option shown.
"""

from __future__ import annotations

import re
import shlex
import subprocess
from pathlib import Path

import click
import pytest

from statehub.cli.argv import dry_parse
from tests.test_rust import rust_bin  # noqa: F401 - the fixture, shared with the Rust tests

ROOT = Path(__file__).resolve().parent.parent
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
FENCE = re.compile(r"^```[^\n]*\n(.*?)^```", re.S | re.M)
INLINE = re.compile(r"(?<!`)`(statehub(?:-rs)? [^`]+)`(?!`)")
PROMPT = re.compile(r"^(\$\s+)?((?:[A-Z_]+=\S*\s+)*)(?:sudo\s+(?:-u\s+\S+\s+)?)?(statehub(?:-rs)?\s.*)$")
SHELL_BREAKS = {"|", "||", "&&", ";", ">", ">>", "<", "&", "2>", "2>&1"}


def shown_commands() -> list[tuple[str, str, bool]]:
    """(where, command line, whether it is a whole command from a code block) for every command shown."""
    found = []
    for path in DOCS:
        text = path.read_text(encoding="utf-8")
        for block in FENCE.findall(text):
            for line in block.splitlines():
                match = PROMPT.match(line.strip())
                if match and not match.group(3).startswith("statehub = "):  # a Cargo.toml line
                    found.append((path.name, match.group(3), True))
        prose = FENCE.sub("", text)
        found += [(path.name, span, False) for span in INLINE.findall(prose)]
    return found


def words_of(line: str) -> list[str]:
    """The command's words: a comment, a pipe or a redirection ends it."""
    lexer = shlex.shlex(line, posix=True, punctuation_chars="|&;<>")
    lexer.whitespace_split = True
    lexer.commenters = "#"
    words = []
    for word in lexer:
        if word in SHELL_BREAKS or set(word) <= set("|&;<>"):
            break
        words.append(word)
    return words


COMMANDS = shown_commands()


def test_the_docs_show_commands_of_both_clis() -> None:
    """The extraction finds the docs' commands (so the tests below are not vacuous)."""
    assert len([c for _, c, whole in COMMANDS if whole and c.startswith("statehub ")]) > 40
    assert any(c.startswith("statehub-rs ") for _, c, _ in COMMANDS)


@pytest.mark.parametrize(("where", "line", "whole"), [c for c in COMMANDS if c[1].startswith("statehub ")])
def test_every_statehub_command_in_the_docs_parses(where: str, line: str, whole: bool) -> None:
    """A `statehub ...` line in the docs parses as the CLI would parse it (a span in prose: its names exist)."""
    from typer.main import get_command

    from statehub.cli.app import app

    words = words_of(line)[1:]
    if not whole and words and words[0].isupper():
        return  # `statehub COMMAND --help`: a placeholder for any command
    try:
        dry_parse(get_command(app), words if whole else [w for w in words if not w.startswith("[")])
    except click.exceptions.Exit:
        pass  # --help or --version shown in the docs: fine
    except (click.NoSuchOption, click.UsageError) as exc:
        names_missing = isinstance(exc, click.NoSuchOption) or "No such command" in exc.format_message()
        if whole or names_missing:
            pytest.fail(f"{where}: `{line}` does not parse: {exc.format_message()}")


@pytest.mark.parametrize(("where", "line", "whole"), [c for c in COMMANDS if c[1].startswith("statehub-rs ")])
def test_every_statehub_rs_command_in_the_docs_parses(where: str, line: str, whole: bool, rust_bin: Path) -> None:  # noqa: F811
    """A `statehub-rs ...` command in the docs exists, and its help lists every option shown."""
    words = [w for w in words_of(line)[1:] if not w.startswith("[")]
    path = [w for w in words[:1] if not w.startswith("-")]
    run = subprocess.run([str(rust_bin), *path, "--help"], capture_output=True, text=True, timeout=30)
    assert run.returncode == 0, f"{where}: `{line}`: {run.stderr}"
    shown = {w.split("=")[0] for w in words if w.startswith("--")}
    unknown = {option for option in shown if not re.search(rf"{re.escape(option)}\b", run.stdout)}
    assert not unknown, f"{where}: `{line}`: statehub-rs {' '.join(path)} has no {sorted(unknown)}"
