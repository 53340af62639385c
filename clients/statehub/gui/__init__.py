"""``statehub gui``: a live window on the hub's state.

    model.py    what the window shows and decides, as plain functions (tested without a display)
    masking.py  values that are never shown (secrets)
    window.py   the FreeSimpleGUI layout and event loop

See docs/clients.md, "The GUI".
"""

from __future__ import annotations
