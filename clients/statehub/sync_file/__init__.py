"""``statehub sync-file PATH``: keep a hand-editable file equal to the hub's state.

    document.py     the file's text: TOML (default) or JSON, header, parsing with line and column
    toml_values.py  statehub values as TOML, including null (which TOML lacks)
    plan.py         what a save changed, against the state at the file's revision (pure)
    note.py         the conflict note kept beside the file for refused edits
    watch.py        noticing a complete save: polling, with a settle time
    adapter.py      the loop: subscription, file, writes

See docs/clients.md, "The file-watcher adapter".
"""

from __future__ import annotations
