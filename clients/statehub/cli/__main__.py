"""``python -m statehub.cli``: the ``statehub`` command."""

from statehub.cli import main

main()
