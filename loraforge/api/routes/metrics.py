"""`GET /metrics`: the service's Prometheus metrics in the text exposition format.

It renders prometheus-client's default registry (this process's counters, histograms and the
inference runner's resident and budget bytes) followed by the fleet figures read from the
database at scrape time (loraforge_jobs per status, loraforge_queue_depth per machine type;
see loraforge.usecases.stats; the registry is the services' `fleet_metrics`), cached for a few
seconds. It needs no API key, like most scrape targets: everything in it is an aggregate over
the whole service (no user, key, slug or URL appears), and a scrape costs at most two GROUP BY
queries per cache period however often it comes.
"""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest

from loraforge import metrics
from loraforge.api.deps import ServicesDep
from loraforge.api.services import Services

router = APIRouter(tags=["health"])


def _render(services: Services) -> bytes:
    queue = services.generation.queue
    metrics.GENERATION_QUEUE_DEPTH.set(queue.depth())
    metrics.GENERATIONS_IN_FLIGHT.set(queue.in_flight())
    return generate_latest(REGISTRY) + generate_latest(services.fleet_metrics)


@router.get("/metrics", summary="Prometheus metrics (text format); no API key needed, aggregates only",
            response_class=Response)
async def prometheus_metrics(services: ServicesDep) -> Response:
    body = await services.db_thread(lambda: _render(services))  # the fleet figures may read the database
    return Response(body, media_type=CONTENT_TYPE_LATEST)
