"""Adding the console to the application."""

from __future__ import annotations

import logging
from typing import Final

from fastapi import FastAPI
from fastapi.responses import RedirectResponse
from fastapi.staticfiles import StaticFiles

from m2mhub.auth.sessions import Sessions, load_secret
from m2mhub.config import Settings
from m2mhub.platform import Platform
from m2mhub.web import alarms, assets, audit, device, fleet, geomap, login, rules
from m2mhub.web.routing import PREFIX
from m2mhub.web.templating import HERE

log = logging.getLogger(__name__)

STATIC: Final = HERE / "static"
# Copied from node_modules by `npm ci` in this directory (make does it); not committed.
VENDOR: Final = STATIC / "vendor"
VENDOR_FILES: Final = (
    "htmx.min.js",
    "uPlot.iife.min.js",
    "uPlot.min.css",
    "leaflet.js",
    "leaflet.css",
)


def install(app: FastAPI, settings: Settings, platform: Platform) -> None:
    """Serve the console from ``app``: pages, static files, sessions."""
    app.state.sessions = Sessions(
        platform.store, secret=load_secret(settings), max_age_s=settings.session_max_age_s
    )
    missing = [name for name in VENDOR_FILES if not (VENDOR / name).is_file()]
    if missing:
        log.warning(
            "web console: %s missing in %s; run `npm ci` in %s (make does it)",
            ", ".join(missing),
            VENDOR,
            HERE,
        )
    app.mount(f"{PREFIX}/static", StaticFiles(directory=STATIC), name="console-static")
    for module in (login, fleet, alarms, audit, device, rules, geomap, assets):
        app.include_router(module.router)
    app.include_router(rules.json_router)
    # App pages (imported here: the apps' modules import the console's).
    from m2mhub.apps.fleet import web as fleet_web
    from m2mhub.apps.metering import web as metering_web

    app.include_router(fleet_web.router)
    app.include_router(metering_web.router)

    @app.get("/", include_in_schema=False)
    async def root() -> RedirectResponse:
        return RedirectResponse(f"{PREFIX}/")
