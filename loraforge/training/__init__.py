"""The trainer, as a library: presets, model loading, the flow-matching loop, per-family code,
export and the tiny models. It knows nothing of HTTP, the database or the queue: `loraforge train`
calls it directly. The layers and the contracts are in docs/architecture.md.
"""
