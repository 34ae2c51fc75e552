"""The OpenAPI document, completed so that every operation can be tried from /docs.

Routes read their bodies by hand (the seeds send JSON on GET and forms on PUT), so FastAPI cannot
infer them. `install_openapi(app)` wraps `app.openapi` to: give each operation listed in
BODY_MODELS its request body schema where the route did not declare one; turn the body a GET
documents into the same fields as query parameters (a browser cannot send a body on GET, so
/docs could not try it), keeping the body schema under `x-request-body`; and list the pre-signed
upload `PUT /files/{key}`, which is mounted outside the schema.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel, ConfigDict, Field

from loraforge.inference.request import GenerationRequest


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class CancelBody(_Body):
    request_id: str = Field(description="the id that submit answered", max_length=64)


class WebhookEvent(_Body):
    types: list[str] = Field(description="statuses to be told about, e.g. TRAINING_COMPLETED, AVAILABLE, FAILED")


class WebhookAddBody(_Body):
    webhook_url: str = Field(description="public http(s) URL that receives signed POSTs", max_length=2048)
    event: WebhookEvent | None = Field(None, description="default: TRAINING_COMPLETED, INFERENCE_QUEUED, AVAILABLE, FAILED, CANCELLED")


class WebhookUpdateBody(_Body):
    webhook_id: str
    webhook_url: str | None = Field(None, max_length=2048)
    event: WebhookEvent | None = None


class WebhookTestBody(_Body):
    webhook_id: str | None = Field(None, description="default: your active webhook")


# (method, path) -> the body model, for routes that read their body by hand.
BODY_MODELS: dict[tuple[str, str], type[BaseModel]] = {
    ("post", "/v1/{slug}"): GenerationRequest,
    ("post", "/v2/{slug}"): GenerationRequest,
    ("post", "/finetune/request/cancel"): CancelBody,
    ("post", "/webhook/add"): WebhookAddBody,
    ("post", "/webhook/update"): WebhookUpdateBody,
    ("post", "/webhook/test"): WebhookTestBody,
}

UPLOAD_PUT: dict[str, Any] = {
    "put": {
        "tags": ["files"],
        "summary": "Upload a dataset ZIP to a pre-signed URL (local storage; with S3 the URL is S3's own)",
        "operationId": "upload_presigned_put",
        "parameters": [
            {"name": "key", "in": "path", "required": True, "schema": {"type": "string"},
             "description": "the object key in the pre-signed URL, e.g. uploads/USER/FILE-name.zip"},
            {"name": "expires", "in": "query", "required": True, "schema": {"type": "integer"}},
            {"name": "signature", "in": "query", "required": True, "schema": {"type": "string"}},
            {"name": "acl", "in": "query", "required": False, "schema": {"enum": ["public-read"]},
             "description": "present in the link of a public upload"},
            {"name": "x-amz-acl", "in": "header", "required": False, "schema": {"enum": ["public-read"]},
             "description": "required, as public-read, when the upload was asked for with public: true"},
        ],
        "requestBody": {"required": True, "content": {
            "application/zip": {"schema": {"type": "string", "format": "binary"}},
            "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
        }},
        "responses": {"200": {"description": "stored"}, "403": {"description": "expired or altered link"},
                      "413": {"description": "over LORAFORGE_MAX_UPLOAD_BYTES"}},
    }
}


def inline_schema(model: type[BaseModel]) -> dict[str, Any]:
    """The model's JSON schema with $defs resolved in place (a requestBody cannot use $defs)."""
    schema = model.model_json_schema()
    defs = schema.pop("$defs", {})

    def resolve(node: Any) -> Any:
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and ref.startswith("#/$defs/"):
                return resolve(defs[ref.removeprefix("#/$defs/")])
            return {k: resolve(v) for k, v in node.items()}
        if isinstance(node, list):
            return [resolve(v) for v in node]
        return node

    return resolve(schema)  # type: ignore[no-any-return]  # resolving a dict gives a dict


def _query_from_body(operation: dict[str, Any]) -> None:
    content = operation.get("requestBody", {}).get("content", {})
    schema = next((c.get("schema") for c in content.values() if "schema" in c), None)
    if not schema:
        return
    params = operation.setdefault("parameters", [])
    present = {p["name"] for p in params if p.get("in") == "query"}
    required = set(schema.get("required", []))
    for name, prop in schema.get("properties", {}).items():
        if name in present or prop.get("type") == "object":
            continue
        params.append({"name": name, "in": "query", "required": False, "schema": prop,
                       "description": "the body field of the same name" + (" (required in one or the other)"
                                                                           if name in required else "")})
    # Browsers cannot send a body on GET (fetch refuses), so /docs would fail to try the operation:
    # the body stays documented under a vendor key and in the description, the query carries it.
    operation["x-request-body"] = operation.pop("requestBody")
    note = ("The same fields are also accepted as a body on this GET (JSON, or a form), as the "
            "Segmind seeds send them; the schema is under `x-request-body`.")
    operation["description"] = f"{operation.get('description', '')}\n\n{note}".strip()


def complete(document: dict[str, Any]) -> dict[str, Any]:
    """Add the missing bodies, the query twins of GET bodies, and the upload PUT to `document`."""
    paths = document.setdefault("paths", {})
    for (method, path), model in BODY_MODELS.items():
        operation = paths.get(path, {}).get(method)
        if operation is not None and "requestBody" not in operation:
            operation["requestBody"] = {"required": True,
                                        "content": {"application/json": {"schema": inline_schema(model)}}}
    for item in paths.values():
        if "get" in item and "requestBody" in item["get"]:  # once: the body moves to x-request-body
            _query_from_body(item["get"])
    paths.setdefault("/files/{key}", {}).update(UPLOAD_PUT)
    return document


def install_openapi(app: FastAPI) -> None:
    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = complete(get_openapi(
                title=app.title, version=app.version, summary=app.summary, routes=app.routes,
            ))
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]  # FastAPI's documented way to extend the schema
