"""The seed endpoints under /finetune/request: submit, details, list, upload URL, access, download.

Handlers only parse (see loraforge.api.bodies), authenticate, call loraforge.usecases (submit's
steps are loraforge.usecases.submit) with a short-lived session on a database thread
(`services.run_db`), and render. Bodies are read by hand because the seeds
send JSON on GET and forms on GET/PUT; `openapi_extra` documents those bodies truthfully.
"""

from __future__ import annotations

import logging
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import PlainTextResponse
from pydantic import BaseModel
from sqlalchemy.orm import Session

from loraforge.api import schemas
from loraforge.api.bodies import body_model
from loraforge.api.deps import CurrentUser, ServicesDep
from loraforge.api.openapi import inline_schema
from loraforge.api.responses import JsonResponse
from loraforge.hints import check_known
from loraforge.jobstate.details import JobDetails, job_details
from loraforge.usecases import finetune_requests as jobs
from loraforge.usecases.submit import submit_request
from loraforge.worker import training_outputs
from loraforge.worker.dataset_report import dataset_details

logger = logging.getLogger(__name__)

router = APIRouter(prefix="/finetune/request", tags=["finetune"])


def _details_query(request_id: Annotated[str | None, Query(max_length=64)] = None) -> None:
    """Declares details' ?request_id= for the OpenAPI document; body_model reads its value."""


# Each body read as the seeds send it; details, upload URL and download also take their fields
# as a query string (browsers cannot send a GET body). Submit's unknown fields are the model's to refuse.
SubmitBody = Annotated[schemas.FineTuneCreate, Depends(body_model(schemas.FineTuneCreate, known=False))]
DetailsBody = Annotated[schemas.DetailsRequest, Depends(
    body_model(schemas.DetailsRequest, query=True, declared=_details_query))]
UploadBody = Annotated[schemas.UploadRequest, Depends(body_model(schemas.UploadRequest, query=True))]
AccessUpdateBody = Annotated[schemas.AccessUpdateRequest, Depends(body_model(schemas.AccessUpdateRequest))]
DownloadBody = Annotated[schemas.DownloadRequest, Depends(body_model(schemas.DownloadRequest, query=True))]


def _body_doc(model: type[BaseModel], *media_types: str) -> dict[str, Any]:
    schema = inline_schema(model)
    return {"requestBody": {"required": True, "content": {m: {"schema": schema} for m in media_types}}}


@router.post(
    "/submit",
    summary="Initiate a fine-tune request",
    response_model=schemas.SubmitPublic,
    openapi_extra=_body_doc(schemas.FineTuneCreate, "application/json"),
)
async def submit(caller: CurrentUser, services: ServicesDep, payload: SubmitBody) -> JsonResponse:
    job = await submit_request(services, caller.user_id, payload)
    return JsonResponse({"status": job.status, "request_id": job.id, "finetune_id": job.id, "name": job.name})


def _visible_job(session: Session, user_id: str, request_id: str) -> JobDetails:
    found = job_details(session, request_id)
    if found is None or (found[0]["user_id"] != user_id and not found[0]["segmind_public"]):
        raise jobs.job_not_found(request_id)
    return found


def _render_details(session: Session, store: Any, user_id: str, request_id: str) -> dict[str, Any]:
    """The seed's fields plus the pipeline's: events, progress, model_information, samples and files."""
    job, events, progress, artifacts = _visible_job(session, user_id, request_id)
    body = {
        **schemas.render_details(job),
        "events": events,
        "progress": progress,
        "model_information": job["model_information"] or {},
        **training_outputs.listed_outputs(store, job, artifacts),
        "dataset": dataset_details(store, job.get("dataset"), job["id"], training_outputs.LINK_SECONDS),
    }
    if job["user_id"] != user_id:
        # another key sees a public model, not its owner's data: the dataset URL (which may hold
        # credentials, and names the owner's user and upload ids) and the dataset report stay private
        body["data_source_path"] = None
        body["dataset"] = None
    return body


@router.get(
    "/details",
    summary="Get one fine-tune request (JSON body {request_id} on GET, or ?request_id=)",
    response_model=schemas.DetailsPublic,
    openapi_extra=_body_doc(schemas.DetailsRequest, "application/json"),
)
async def details(caller: CurrentUser, services: ServicesDep, fields: DetailsBody) -> JsonResponse:
    settings, store, wanted = services.settings, services.store, fields.request_id
    body = await services.run_db(lambda s: _render_details(s, store, caller.user_id, wanted), readonly=True)
    available = body["status"] == "AVAILABLE"
    body["inference_api_url"] = f"{settings.public_url}/v1/{body['slug']}" if available else None
    return JsonResponse({"finetune": body})


@router.get(
    "/metrics",
    summary="Loss history of a fine-tune request: [{step, loss, lr, step_seconds}], at most 500 points",
)
async def metrics(
    request: Request, caller: CurrentUser, services: ServicesDep, request_id: Annotated[str, Query(min_length=1, max_length=64)]
) -> JsonResponse:
    check_known(request.query_params, ("request_id",))

    def read(session: Session) -> dict[str, Any]:
        job = _visible_job(session, caller.user_id, request_id)[0]
        return {"request_id": job["id"], "loss_history": training_outputs.loss_history(session, job["id"])}

    return JsonResponse(await services.run_db(read, readonly=True))


@router.get(
    "/list", summary="List your fine-tune requests, newest first", response_model=list[schemas.ListRowPublic]
)
async def list_requests(
    request: Request,
    caller: CurrentUser,
    services: ServicesDep,
    limit: Annotated[int, Query(ge=1, le=jobs.LIST_LIMIT_MAX)] = 100,
    offset: Annotated[int, Query(ge=0, le=jobs.LIST_OFFSET_MAX)] = 0,
) -> JsonResponse:
    check_known(request.query_params, ("limit", "offset"))  # a typo such as ?limt=5 is refused, not ignored
    rows = await services.run_db(
        lambda s: [schemas.render_list_row(j) for j in jobs.list_jobs(s, caller.user_id, limit, offset)],
        readonly=True,
    )
    return JsonResponse(rows)


@router.get(
    "/upload/pre-signed-url",
    summary="Get a pre-signed URL to PUT a dataset ZIP (JSON body on GET, or ?name=&extension=&public=)",
    response_model=schemas.UploadPublic,
    openapi_extra=_body_doc(schemas.UploadRequest, "application/json"),
)
async def upload_url(caller: CurrentUser, services: ServicesDep, wanted: UploadBody) -> JsonResponse:
    settings, store = services.settings, services.store
    presigned, s3_url = await services.run_db(
        lambda s: jobs.create_upload(s, store, settings, caller.user_id, wanted)
    )
    return JsonResponse({"presigned_url": presigned, "s3_url": s3_url})


@router.put(
    "/access-update",
    summary="Make a fine-tuned model public or private (form: request_id, segmind_public)",
    openapi_extra=_body_doc(
        schemas.AccessUpdateRequest, "application/x-www-form-urlencoded", "multipart/form-data"
    ),
)
async def access_update(caller: CurrentUser, services: ServicesDep, wanted: AccessUpdateBody) -> JsonResponse:
    store = services.store
    job = await services.run_db(
        lambda s: jobs.update_access(s, store, caller.user_id, wanted.request_id, wanted.segmind_public),
    )
    return JsonResponse({"request_id": job.id, "segmind_public": job.segmind_public})


@router.get(
    "/file/download",
    summary="Get a download link for a model file (form: cloud_storage_url); answers text/plain",
    response_class=PlainTextResponse,
    openapi_extra=_body_doc(
        schemas.DownloadRequest, "application/x-www-form-urlencoded", "multipart/form-data"
    ),
)
async def file_download(caller: CurrentUser, services: ServicesDep, wanted: DownloadBody) -> PlainTextResponse:
    store = services.store
    link = await services.run_db(
        lambda s: jobs.download_link(s, store, caller.user_id, wanted.cloud_storage_url)
    )
    return PlainTextResponse(link)
