"""``statehub gui``: a live window on the hub's state.

    model.py    what the window shows and decides, as plain functions (tested without a display)
    masking.py  values that are never shown (secrets)
    layouts.py  where things are: the window's and the dialogs' FreeSimpleGUI layouts
    window.py   the event loop: hub events in, operator actions out

See docs/clients.md, "The GUI".
"""

from __future__ import annotations
