"""loraforge: a self-hostable LoRA fine-tuning service for Qwen-Image and FLUX.1-dev.

`api` speaks the Segmind-compatible HTTP API and calls `usecases`; `jobstate` holds the job state
machine and the lease, `dispatch` hands job ids to workers, `worker` runs each job in a supervised
child process; `datasets` and `training` turn a ZIP into a LoRA without
knowing about HTTP or the database, `inference` serves trained LoRAs, `storage` hides local disk
and S3 behind one protocol, and `webhooks` tells users when a job changes status.
The layers and the life of a job are in docs/architecture.md.
"""

__version__ = "0.1.0"
