"""A real HTTP receiver on 127.0.0.1 and platforms whose delivery worker runs fast."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from m2mhub.api.app import create_app
from m2mhub.config import Settings
from m2mhub.core.values import Role
from m2mhub.platform import Platform
from m2mhub.store import Store
from tests.conftest import Api, drop_schema, new_store, same_database

#: Retries in milliseconds, not minutes: the behaviour is the same, the tests are fast.
FAST: dict[str, Any] = {
    "delivery_backoff_s": 0.05,
    "delivery_backoff_max_s": 0.2,
    "delivery_poll_s": 0.05,
    "delivery_max_attempts": 3,
    "webhook_timeout_s": 3.0,
    "delivery_lease_s": 10.0,
}


@dataclass
class Request:
    path: str
    headers: dict[str, str]
    body: bytes
    at: float
    answered: int

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Receiver:
    """An HTTP server that records every POST and answers with the planned statuses
    (the last one repeats), optionally with extra headers."""

    url: str = ""
    plan: list[int] = field(default_factory=lambda: [200])
    headers: dict[str, str] = field(default_factory=dict)
    delay_s: float = 0.0
    requests: list[Request] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def answer(self) -> int:
        with self.lock:
            return self.plan.pop(0) if len(self.plan) > 1 else self.plan[0]

    def record(self, request: Request) -> None:
        with self.lock:
            self.requests.append(request)

    def received(self) -> list[Request]:
        with self.lock:
            return list(self.requests)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    state = Receiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            if state.delay_s:
                time.sleep(state.delay_s)
            status = state.answer()
            state.record(Request(self.path, dict(self.headers), body, time.monotonic(), status))
            self.send_response(status)
            for name, value in state.headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", "7")
            self.end_headers()
            self.wfile.write(b"thanks\n" if status < 300 else b"nope!!\n")

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{server.server_address[1]}/hook"
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()


async def wait_for(
    condition: Callable[[], Awaitable[Any]], *, within: float = 15.0, what: str = "condition"
) -> Any:
    """Poll ``condition`` until it returns something truthy; fail after ``within`` s."""
    deadline = time.monotonic() + within
    while True:
        value = await condition()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {within} s waiting for {what}")
        await asyncio.sleep(0.02)


@asynccontextmanager
async def serve(
    store: Store, tmp_path: Path, *, roles: str = "api,scheduler", **overrides: Any
) -> AsyncIterator[Api]:
    """A platform on ``store`` (fast retries) behind an HTTP client, tenant ``acme``."""
    settings = Settings(data_dir=tmp_path, roles=roles, mqtt_enabled=False, **{**FAST, **overrides})
    async with Platform(settings, store=store) as platform:
        app = create_app(settings, platform=platform)
        tenant = await platform.store.get_tenant("acme") or await platform.registry.create_tenant(
            "acme", "Acme"
        )
        _, admin_key = await platform.registry.create_api_key(tenant.id, "admin", Role.ADMIN)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://m2mhub.test") as client:
            yield Api(client, platform, tenant, admin_key)


@dataclass
class Database:
    """A database for a test, on either backend; ``store()`` opens another view of it."""

    first: Store
    tmp_path: Path

    def store(self) -> Store:
        return same_database(self.first)


@pytest.fixture
def database(backend: str, tmp_path: Path) -> Iterator[Database]:
    store, schema = new_store(backend, tmp_path)
    try:
        yield Database(store, tmp_path)
    finally:
        if schema:
            drop_schema(schema)


@pytest.fixture
async def hooks(database: Database) -> AsyncIterator[Api]:
    """The API with a running delivery worker, on each backend."""
    async with serve(database.first, database.tmp_path) as api:
        yield api
