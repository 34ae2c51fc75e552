"""Handing job ids to workers: the queue (embedded or Celery), publishing, and recovery of stale jobs.

The database is the truth; a queue carries only job ids, and a job published twice trains once
(the worker's lease guards it). The layers and the life of a job are in docs/architecture.md.
"""
