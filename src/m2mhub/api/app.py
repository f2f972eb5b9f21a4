"""The ASGI application: REST API, health and metrics around one Platform."""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Final

from fastapi import FastAPI, Response
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from swagger_ui_bundle import swagger_ui_path

from m2mhub import __version__
from m2mhub.api import alarms as alarms_api
from m2mhub.api import audit, commands, errors, ingest, notifications, registry, telemetry, webhooks
from m2mhub.api import osmand as osmand_api
from m2mhub.api import p1 as p1_api
from m2mhub.api import rules as rules_api
from m2mhub.api import stream as stream_api
from m2mhub.apps.fleet import api as fleet_api
from m2mhub.apps.metering import api as metering_api
from m2mhub.config import Settings
from m2mhub.platform import Platform


class PlatformCollector(Collector):
    """Reads the platform's counters when Prometheus scrapes."""

    def __init__(self, platform: Platform) -> None:
        self.platform = platform

    def collect(self) -> Iterator[Metric]:
        p = self.platform
        yield CounterMetricFamily(
            "m2mhub_ingest_values", "Telemetry values newly stored", value=p.writer.rows_written
        )
        yield CounterMetricFamily(
            "m2mhub_ingest_transactions",
            "Telemetry write transactions",
            value=p.writer.transactions,
        )
        yield CounterMetricFamily(
            "m2mhub_ingest_rejected", "Payloads rejected as invalid", value=p.rejected
        )
        yield GaugeMetricFamily(
            "m2mhub_bus_subscribers", "Live bus subscribers", value=p.bus.subscribers
        )
        lag = GaugeMetricFamily(
            "m2mhub_bus_lag", "Events waiting in bus subscribers' queues", labels=["subscriber"]
        )
        dropped = CounterMetricFamily(
            "m2mhub_bus_dropped",
            "Events a bus subscriber fell too far behind to receive",
            labels=["subscriber"],
        )
        for name, stats in sorted(p.bus.stats().items()):
            lag.add_metric([name], stats.lag)
            dropped.add_metric([name], stats.dropped)
        yield lag
        yield dropped
        yield CounterMetricFamily(
            "m2mhub_rules_errors",
            "Rule evaluations or actions that failed in this process",
            value=p.rules.errors,
        )
        yield CounterMetricFamily(
            "m2mhub_rules_conflicts",
            "Rule state saves lost to another process (each followed by a reload)",
            value=p.rules.conflicts,
        )
        yield from _tracker_metrics(p)
        yield CounterMetricFamily(
            "m2mhub_deliveries_delivered",
            "Webhooks and notifications delivered by this process",
            value=p.deliveries.delivered,
        )
        yield CounterMetricFamily(
            "m2mhub_deliveries_dead",
            "Webhooks and notifications that became dead letters in this process",
            value=p.deliveries.dead,
        )
        yield CounterMetricFamily(
            "m2mhub_delivery_failed_attempts",
            "Failed attempts that were retried later",
            value=p.deliveries.failed_attempts,
        )


def _tracker_metrics(p: Platform) -> Iterator[Metric]:
    labels = ["protocol"]
    connections = CounterMetricFamily(
        "m2mhub_tracker_connections", "Tracker connections accepted", labels=labels
    )
    readings = CounterMetricFamily(
        "m2mhub_tracker_readings", "Tracker readings passed on to ingest", labels=labels
    )
    unknown = CounterMetricFamily(
        "m2mhub_tracker_unknown_devices", "Trackers refused: IMEI unknown", labels=labels
    )
    idle = CounterMetricFamily(
        "m2mhub_tracker_idle_timeouts", "Tracker connections cut for idling", labels=labels
    )
    dropped = CounterMetricFamily(
        "m2mhub_tracker_frames_dropped",
        "Tracker frames dropped (bad CRC, length, codec, ...)",
        labels=[*labels, "reason"],
    )
    for server in p.trackers:
        name, stats = server.protocol.name, server.stats
        connections.add_metric([name], stats.connections)
        readings.add_metric([name], stats.readings)
        unknown.add_metric([name], stats.unknown_devices)
        idle.add_metric([name], stats.idle_timeouts)
        for reason, count in sorted(stats.dropped.items()):
            dropped.add_metric([name, reason], count)
    refused = CounterMetricFamily(
        "m2mhub_positions_refused",
        "Tracker fixes or readings refused by the position filter",
        labels=["reason"],
    )
    for reason, count in sorted(p.positions.refused.items()):
        refused.add_metric([reason], count)
    yield from (connections, readings, unknown, idle, dropped, refused)


#: The cyclic garbage collector's thresholds in a running server (Python's are 700, 10, 10).
#: An MQTT group keeps tens of thousands of objects alive until its commit, so with the
#: defaults every few hundred messages start a collection that walks all of them again, and
#: full collections come often: a quarter of the event loop's time at 30,000 messages/s.
#: Cycles that die young are still found by the young collections, only less often.
GC_THRESHOLDS: Final = (50_000, 20, 100)


def create_app(settings: Settings, *, platform: Platform | None = None) -> FastAPI:
    """The m2mhub web application; it owns ``platform``'s lifecycle."""
    owned = platform or Platform(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with owned:
            # Everything made so far (modules, settings, caches) lives as long as the
            # process: keep it out of the collector's scans, which otherwise add tens of
            # milliseconds to large responses (docs/performance.md).
            gc.freeze()
            gc.set_threshold(*GC_THRESHOLDS)
            yield
            stream_api.streams_of(app).close()

    app = FastAPI(
        title="m2mhub",
        version=__version__,
        description="Machine-to-machine platform: devices, telemetry, queries. "
        "Authenticate with `Authorization: Bearer <API key>`; devices post with their token.",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
    )
    app.state.platform = owned
    errors.install(app)
    serves_api = "api" in settings.role_set()
    if serves_api:
        app.include_router(ingest.router)
        app.include_router(p1_api.router)
        app.include_router(osmand_api.router)
        app.include_router(registry.router)
        app.include_router(telemetry.router)
        app.include_router(commands.router)
        app.include_router(webhooks.router)
        app.include_router(notifications.router)
        app.include_router(audit.router)
        app.include_router(rules_api.router)
        app.include_router(alarms_api.router)
        app.include_router(stream_api.router)
        app.include_router(metering_api.router)
        app.include_router(fleet_api.router)
        # Imported here: the console's pages use the API's modules (api <-> web otherwise).
        from m2mhub.web import install as install_console

        install_console(app, settings, owned)
        # API docs from assets installed with the package: operators run closed networks.
        app.mount("/static/swagger-ui", StaticFiles(directory=swagger_ui_path), name="swagger-ui")

        @app.get("/docs", include_in_schema=False)
        async def docs() -> HTMLResponse:
            return get_swagger_ui_html(
                openapi_url="/openapi.json",
                title="m2mhub API",
                swagger_js_url="/static/swagger-ui/swagger-ui-bundle.js",
                swagger_css_url="/static/swagger-ui/swagger-ui.css",
                swagger_favicon_url="/static/swagger-ui/favicon-32x32.png",
            )

    metrics = CollectorRegistry()
    metrics.register(PlatformCollector(owned))

    @app.get("/healthz", tags=["operations"])
    async def healthz() -> dict[str, object]:
        """Liveness and the schema version; 503 if the database does not answer."""
        version = await owned.store.schema_version()
        return {"status": "ok", "schema_version": version, "store": owned.store.backend}

    @app.get("/metrics", tags=["operations"], include_in_schema=False)
    async def prometheus() -> Response:
        return Response(generate_latest(metrics), media_type="text/plain; version=0.0.4")

    return app
