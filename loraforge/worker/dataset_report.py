"""A job's dataset report: stored with the job, summarised in its details, counted in an event.

`store_dataset_report` is what the worker calls once preparation has written
`dataset_report.json` (also when the dataset was refused, so the user sees why): the file goes to
storage at `datasets/{finetune_id}/dataset_report.json`, its summary (datasets.report.summarize)
to the job's run row, where details shows it under `dataset`, and a DATA_PROCESSING event carries
the counts. The child-process runtime calls it from its `dataset` message handler. The report is
read through datasets.report.read_report, which refuses a file over MAX_REPORT_BYTES (16 MiB)
before reading it: the worker's memory never grows with what a dataset holds.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from loraforge.datasets.report import ReportTooLarge, counts_line, read_report, summarize
from loraforge.jobstate import lease
from loraforge.jobstate.events import record_event
from loraforge.jobstate.statuses import JobStatus
from loraforge.storage import keys
from loraforge.storage.base import ObjectStore

logger = logging.getLogger(__name__)


def store_dataset_report(store: ObjectStore, sessions: sessionmaker[Session], job_id: str,
                         report_path: Path) -> dict[str, Any] | None:
    """Upload the report, record its summary and the counts event; the summary, or None if no report."""
    report_path = Path(report_path)
    if not report_path.is_file():
        return None
    try:
        summary = summarize(read_report(report_path))
    except (ReportTooLarge, OSError, ValueError, TypeError) as exc:  # our writer caps it: a bug, not the user's
        logger.error("job %s: dataset report not stored: %s", job_id, exc)
        return None
    store.put_file(keys.report_key(job_id), report_path, content_type="application/json")
    with sessions() as session:
        lease.ensure_run(session, job_id).dataset = summary
        session.commit()
        record_event(session, job_id, JobStatus.DATA_PROCESSING.value, counts_line(summary))
    logger.info("job %s %s", job_id, counts_line(summary))
    return summary


def dataset_details(store: ObjectStore, summary: dict[str, Any] | None, job_id: str,
                    link_seconds: int) -> dict[str, Any] | None:
    """The `dataset` field of details: the summary plus a signed link to the whole report."""
    if summary is None:
        return None
    key = keys.report_key(job_id)
    return {**summary, "report_url": store.presigned_get(key, link_seconds)}
