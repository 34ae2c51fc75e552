"""Use-cases the API calls: submit, list, details, uploads, access, cancel, delete, quotas, stats.

Each function takes a database session (and the store or settings it needs), checks the caller's
right to act, and returns domain values or raises a `LoraforgeError`; none knows HTTP. The layers
and the life of a job are in docs/architecture.md.
"""
