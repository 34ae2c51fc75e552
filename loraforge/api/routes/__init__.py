"""HTTP routes, one module per resource, each exposing `router` (and optionally `lifespan(app)`)."""
