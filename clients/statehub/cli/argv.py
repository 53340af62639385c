"""The command line as people type it, made into the shape Click parses.

Two habits from other tools that Click does not follow on its own:

* global options after the command (``statehub get k --data-dir D``,
  ``statehub status --timeout 5``): they are moved in front of the command,
  unless the command has an option of that name itself (``serve --data-dir``);
* a negative number as a value (``statehub set plant.offset -5``): Click
  takes ``-5`` for an option, so the command's arguments are put after ``--``.

The command tree itself says which tokens are options and which of those take
a value, so an option's value that looks like an option (``--file -x``) is
never misread, and ``--`` still ends the options.  Nothing here runs a command.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import click

NEGATIVE_NUMBER = re.compile(r"-(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?|-inf(inity)?|-Infinity", re.IGNORECASE)
HELP_NAMES = ("--help", "-h")


@dataclass
class Options:
    """One command's options: which names exist, and which of them take a value."""

    takes_value: dict[str, bool] = field(default_factory=dict)

    @classmethod
    def of(cls, command: click.Command, *, movable_only: bool = False) -> Options:
        import click

        found = cls()
        for param in command.params:
            if not isinstance(param, click.Option):
                continue
            if movable_only and param.is_eager:  # --version, --install-completion: stay where they are
                continue
            for name in (*param.opts, *param.secondary_opts):
                found.takes_value[name] = not (param.is_flag or param.count)
        return found

    def match(self, token: str) -> tuple[str, bool] | None:
        """(name, whether the next token is its value) if ``token`` is one of these options."""
        name, equals, _ = token.partition("=")
        if name not in self.takes_value:
            return None
        return name, self.takes_value[name] and not equals


def normalised(root: click.Command, args: list[str]) -> list[str]:
    """``args`` with global options moved before the command and negative numbers kept as values."""
    import click

    globals_ = Options.of(root, movable_only=True)
    front: list[str] = []
    path: list[str] = []
    rest = list(args)
    command: click.Command = root
    context = click.Context(root)
    while True:
        level, rest = leading_options(Options.of(command), rest)
        (front if command is root else path).extend(level)
        if not rest or not isinstance(command, click.Group):
            break
        sub = command.get_command(context, rest[0])
        if sub is None:  # not a command: Click says so with the right message
            break
        path.append(rest[0])
        command, rest = sub, rest[1:]
    if command is root:
        return front + rest
    moved, own, values, needs_end = _split_leaf(Options.of(command), globals_, rest)
    tail = [*own, "--", *values] if needs_end else [*own, *values]
    return front + moved + path + tail


def leading_options(options: Options, args: list[str]) -> tuple[list[str], list[str]]:
    """The options (with their values) at the head of ``args``, and what follows them."""
    taken: list[str] = []
    index = 0
    while index < len(args):
        token = args[index]
        matched = options.match(token)
        if matched is None and token not in HELP_NAMES:
            break
        takes = matched is not None and matched[1]
        taken.extend(args[index : index + 1 + takes])
        index += 1 + takes
    return taken, args[index:]


def _split_leaf(
    own: Options, globals_: Options, args: list[str]
) -> tuple[list[str], list[str], list[str], bool]:
    """(global options to move, the command's options, its values, whether the values need ``--``)."""
    moved: list[str] = []
    options: list[str] = []
    values: list[str] = []
    needs_end = False
    index = 0
    while index < len(args):
        token = args[index]
        if token == "--":
            values.extend(args[index + 1 :])
            needs_end = True
            break
        mine, other = own.match(token), globals_.match(token)
        matched = mine or other
        if matched is not None:
            takes = matched[1]
            (options if mine else moved).extend(args[index : index + 1 + takes])
            index += 1 + takes
            continue
        if NEGATIVE_NUMBER.fullmatch(token):
            needs_end = True
            values.append(token)
        elif token.startswith("-") and token != "-":
            options.append(token)  # unknown: Click names it in its error
        else:
            values.append(token)
        index += 1
    return moved, options, values, needs_end


def dry_parse(root: click.Command, args: list[str]) -> None:
    """Parse ``args`` as ``statehub ARGS`` would be, without running anything; click.UsageError if they do not parse.

    The docs-drift test runs every command the docs show through this.
    """
    import click

    rest = normalised(root, args)
    command: click.Command = root
    name = "statehub"
    while isinstance(command, click.Group):
        _, rest = leading_options(Options.of(command), rest)
        if not rest or rest[0].startswith("-"):
            if rest:
                raise click.NoSuchOption(rest[0])
            return  # a group alone: its help
        sub = command.commands.get(rest[0])
        if sub is None:
            raise click.UsageError(f"No such command {rest[0]!r} under {name!r}.")
        command, name, rest = sub, f"{name} {rest[0]}", rest[1:]
    with command.make_context(name, rest):
        pass
