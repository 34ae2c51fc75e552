"""loraforge: a self-hostable LoRA fine-tuning service for Qwen-Image and FLUX.1-dev.

The package follows ../shared/DESIGN.md: `api` speaks the Segmind-compatible HTTP API, `jobs` owns
the job state machine and the queue, `datasets` and `training` turn a ZIP into a LoRA without
knowing about HTTP or the database, `inference` serves trained LoRAs, `storage` hides local disk
and S3 behind one protocol, and `webhooks` tells users when a job changes status.
"""

__version__ = "0.1.0"
