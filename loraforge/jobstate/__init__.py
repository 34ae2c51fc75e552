"""A job's state in the database: its statuses and transitions, its events, and the run's lease.

Every status change goes through `events.move`, which checks the transition, records the event and
writes the webhook outbox row in the same transaction. The layers and the life of a job are in
docs/architecture.md.
"""
