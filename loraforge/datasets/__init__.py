"""Datasets: safe download, safe ZIP extraction, image checks, captions, buckets, face crops and the
report; `prepare.prepare_dataset` is the entry point. The layers and the contracts are in
docs/architecture.md.
"""
