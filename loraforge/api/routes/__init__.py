"""HTTP routes, one module per resource or operation, each exposing `router`; create_app lists them."""
