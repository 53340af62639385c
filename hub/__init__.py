"""statehub's hub: the one process that owns the store.

Installed as ``statehub.hub`` (the repository keeps it in ``hub/``).  Run it with
``statehub serve`` or ``python -m statehub.hub``.  Library users want the client
in ``statehub`` instead; this package's public module is ``statehub.hub.protocol``
(the wire messages).  No module here imports the client.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
