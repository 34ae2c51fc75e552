"""The job's child process: dataset preparation, the memory preflight, training and the deploy check.

Started by the worker as `python -m loraforge.worker.child.main`; it talks to its parent only
through the pipe protocol (protocol.py). The layers and the child protocol are in docs/architecture.md.
"""
