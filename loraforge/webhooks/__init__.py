"""Webhooks: registration, Standard Webhooks signing, the outbox dispatcher with its retries, and
the dispatch log. The layers and the contracts are in docs/architecture.md.
"""
