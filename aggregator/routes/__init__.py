"""The HTTP API's routes, one router per resource; ``api.create_app`` includes them.

Each router reads what it serves from ``request.app.state`` (``context.py``): the views over the store, the
config, the change feed, the ingest statistics and the stop event, set once by ``create_app``.
"""
