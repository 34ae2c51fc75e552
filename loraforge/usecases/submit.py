"""Submit's order of steps: what runs where, and what is held while it runs.

`submit_request(services, user_id, payload)` first does the work that waits on someone else,
holding no database session (a slow dataset host or a large upload to hash must not stall other
requests): the checks that need neither database nor network, then for a foreign URL the HEAD
probe, within one of the key's `probes` slots and on the probe threads; for an upload of this
store, one read-only session to check the key owns it, then the object is read and hashed. Only
then one short transaction records the job (loraforge.usecases.finetune_requests.submit), and
the runtime publishes it (`on_submitted`). `services` is anything shaped like `SubmitServices`
(the API's loraforge.api.services.Services), so this module never imports the HTTP layer.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from anyio import CapacityLimiter, to_thread

from loraforge.config import Settings
from loraforge.db.models import FineTuneJob
from loraforge.storage.base import ObjectStore
from loraforge.usecases import finetune_requests as jobs
from loraforge.usecases.payloads import FineTuneCreate
from loraforge.usecases.ports import RunDb
from loraforge.usecases.quotas import InFlightSlots


class SubmitServices(Protocol):
    """What submit uses of the process: settings, store, probe quota and threads, the database, the hook."""

    @property
    def settings(self) -> Settings: ...
    @property
    def store(self) -> ObjectStore: ...
    @property
    def probe_slots(self) -> InFlightSlots: ...
    @property
    def probe_limiter(self) -> CapacityLimiter: ...
    @property
    def on_submitted(self) -> Callable[[str], None]: ...
    @property
    def run_db(self) -> RunDb: ...


async def submit_request(services: SubmitServices, user_id: str, payload: FineTuneCreate) -> FineTuneJob:
    """Check `payload`, record its job REQUESTED for `user_id`, hand it to the runtime; the job."""
    settings, store = services.settings, services.store
    key = await to_thread.run_sync(jobs.check_submit, store, settings, payload)
    facts = None
    if key is None:
        with services.probe_slots.hold(user_id):  # the key's `probes` quota
            await to_thread.run_sync(jobs.probe_source, settings, payload.data_source_path,
                                     limiter=services.probe_limiter)
    else:
        upload_key = key
        await services.run_db(lambda s: jobs.owned_upload(s, settings, user_id, upload_key), readonly=True)
        facts = await to_thread.run_sync(jobs.check_upload_object, store, settings, key)
    job = await services.run_db(lambda s: jobs.submit(s, store, settings, user_id, payload, facts))
    await to_thread.run_sync(services.on_submitted, job.id)  # publishing may touch a broker: not on the loop
    return job
