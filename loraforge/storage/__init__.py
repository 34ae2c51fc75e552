"""Object storage: one protocol (`ObjectStore`), a local-disk backend and an S3 backend."""
