"""statehub web: the live dashboard and the HTTP API, a client of the hub like any other.

An optional extra (``pip install statehub[web]``: Starlette and uvicorn); the
core never imports it.  ``statehub web`` serves it (statehub.web.command);
``create_app(options)`` (statehub.web.app) builds the ASGI app.  docs/web.md is
the page, docs/http.md the API.

    feed.py         the replica, the log of recent revisions, per-stream queues
    follower.py     the one subscription that feeds them
    sse.py          GET /api/events: resume with Last-Event-ID, or resync
    api.py          keys, compare-and-set writes, history, txn, status
    access.py       tokens, roles, who a request is
    server_state.py what one server holds; the access checks of a request
    hub_link.py     client settings; blocking client calls off the event loop
    errors.py       errors as HTTP answers
    app.py          routes, headers, lifetime
    serving.py      uvicorn on a socket bound here
    command.py      the `statehub web` command
"""
