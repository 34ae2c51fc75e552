"""The HTTP API: the app factory, the key check, one route module per resource, the schemas.

No business logic: a route parses, authenticates, calls loraforge.usecases and renders the answer
or the error. The layers and the contracts are in docs/architecture.md.
"""
