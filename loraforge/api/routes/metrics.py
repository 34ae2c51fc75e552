"""`GET /metrics`: the service's Prometheus metrics in the text exposition format.

It renders prometheus-client's default registry (this process's counters, histograms and the
inference runner's resident and budget bytes) followed by the fleet figures read from the
database at scrape time (loraforge_jobs per status, loraforge_queue_depth per machine type;
see loraforge.usecases.stats), cached for a few seconds. It needs no API key, like most scrape
targets: everything in it is an aggregate over the whole service (no user, key, slug or URL
appears), and a scrape costs at most two GROUP BY queries per cache period however often it comes.
"""

from __future__ import annotations

from anyio import to_thread
from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest

from loraforge import metrics
from loraforge.usecases.stats import job_counts, queue_depth

router = APIRouter(tags=["health"])


def _fleet_registry(app: FastAPI) -> CollectorRegistry:
    """The app's registry of database-backed figures, made on first scrape."""
    registry = getattr(app.state, "metrics_registry", None)
    if registry is None:
        settings = app.state.settings

        def read() -> metrics.FleetFigures:
            with app.state.read_sessionmaker() as session:
                depth = {settings.machine_type: 0, **queue_depth(session)}
                return metrics.FleetFigures(jobs=job_counts(session), queue_depth=depth)

        registry = CollectorRegistry(auto_describe=False)
        registry.register(metrics.FleetCollector(read))
        app.state.metrics_registry = registry
    return registry


def _render(app: FastAPI) -> bytes:
    generation = getattr(app.state, "generation", None)
    if generation is not None:
        metrics.GENERATION_QUEUE_DEPTH.set(generation.depth())
        metrics.GENERATIONS_IN_FLIGHT.set(generation.in_flight())
    return generate_latest(REGISTRY) + generate_latest(_fleet_registry(app))


@router.get("/metrics", summary="Prometheus metrics (text format); no API key needed, aggregates only",
            response_class=Response)
async def prometheus_metrics(request: Request) -> Response:
    body = await to_thread.run_sync(_render, request.app, limiter=request.app.state.db_limiter)
    return Response(body, media_type=CONTENT_TYPE_LATEST)
