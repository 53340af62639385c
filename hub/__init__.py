"""statehub's hub: the one process that owns the store.

Run it with ``statehub serve`` or ``python -m hub``.  Library users want the
client in ``statehub`` instead; this package's public modules are
``hub.protocol`` (the wire messages) and ``hub.testing`` (a hub for tests).
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
