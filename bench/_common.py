"""What the benchmarks share: the machine, temporary stores, a server process, timing.

Every resource here is owned by a context manager, so a benchmark that fails
or is interrupted still removes its files, its PostgreSQL schema and its
server process.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import getpass
import glob
import json
import os
import platform
import secrets
import shutil
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Coroutine, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import httpx
import psycopg

DEFAULT_PG_URL = "postgresql://postgres@127.0.0.1:5432/test"
HOUR_MS = 3_600_000
T = TypeVar("T")


def stop_cleanly_on_sigterm() -> None:
    """Turn SIGTERM (``kill``, ``timeout``) into SystemExit, so that cleanup still runs."""

    def stop(signum: int, frame: object) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, stop)


# -- the machine ----------------------------------------------------------------------------


def machine_summary(pg_url: str | None) -> list[str]:
    """One line per fact a reader needs to compare figures: cores, memory, versions."""
    cpu = "unknown CPU"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    memory = "?"
    with contextlib.suppress(OSError, ValueError, IndexError):
        kb = int(Path("/proc/meminfo").read_text().split()[1])
        memory = f"{kb / 1024 / 1024:.1f} GiB"
    lines = [
        f"cpu: {os.cpu_count()} cores, {cpu}; memory {memory}",
        f"python {platform.python_version()}, SQLite {sqlite3.sqlite_version}",
    ]
    if pg_url:
        version = postgres_version(pg_url)
        lines.append(f"PostgreSQL: {version or 'not reachable at ' + pg_url}")
    return lines


def postgres_version(pg_url: str) -> str | None:
    try:
        with psycopg.connect(pg_url, connect_timeout=3) as conn:
            row = conn.execute("SHOW server_version").fetchone()
    except psycopg.Error:
        return None
    return str(row[0]) if row else None


# -- temporary stores -----------------------------------------------------------------------


@contextlib.contextmanager
def temp_dir(prefix: str) -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@contextlib.contextmanager
def pg_schema(pg_url: str, prefix: str) -> Iterator[str]:
    """A fresh, private schema name, dropped (with everything in it) on exit."""
    name = f"{prefix}_{os.getpid()}_{int(time.time()) % 100_000}"
    try:
        yield name
    finally:
        try:
            with psycopg.connect(pg_url, autocommit=True) as conn:
                conn.execute(f"DROP SCHEMA IF EXISTS {name} CASCADE")
        except psycopg.Error as exc:
            print(f"could not drop schema {name}: {exc}", file=sys.stderr)


def pg_checkpoint(pg_url: str) -> None:
    """Flush PostgreSQL's dirty buffers now, so that the next measurement does not pay for them."""
    with contextlib.suppress(psycopg.Error), psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("CHECKPOINT")


def pg_store_url(pg_url: str, schema: str) -> str:
    return f"{pg_url}{'&' if '?' in pg_url else '?'}schema={schema}"


# -- the fleet -------------------------------------------------------------------------------


async def prepare(
    database_url: str, devices: int, values: int, *, broker: Mosquitto | None = None
) -> tuple[list[tuple[str, int, str]], dict[str, int]]:
    """Tenant, device type (keys ``v0``.. numbers) and devices with their own tokens.

    With ``broker``, every device also gets its account at that Mosquitto, as
    m2mhub creates it (dynamic security). Returns (id, pk, token) per device
    and the key ids.
    """
    from m2mhub.connect.mqtt.dynsec import DynamicSecurity
    from m2mhub.connect.mqtt.transport import BrokerAddress
    from m2mhub.registry.service import Registry
    from m2mhub.store import open_store
    from m2mhub.store.models import KeySpec

    async with contextlib.AsyncExitStack() as stack:
        store = await stack.enter_async_context(open_store(database_url))
        registry = Registry(store)
        if broker is not None:
            address = BrokerAddress(
                "127.0.0.1", broker.port, username=broker.admin, password=broker.password
            )
            registry.accounts = await stack.enter_async_context(DynamicSecurity(address))
        tenant = await registry.create_tenant("bench")
        keys = [KeySpec(f"v{i}", unit="unit") for i in range(values)]
        await registry.create_device_type(tenant.id, "sensor", keys, report_interval_s=60)
        csv = "name,type,id\n" + "".join(
            f"sensor {i:06d},sensor,dev{i:06d}\n" for i in range(devices)
        )
        created = await registry.import_devices_csv(tenant.id, csv)
        if broker is not None:
            await _check_accounts(registry.accounts, [(d.id, token) for d, token in created])
        key_ids = await store.key_ids([k.key for k in keys])
    return [(d.id, d.pk, token) for d, token in created], key_ids


async def _check_accounts(accounts: Any, credentials: list[tuple[str, str]]) -> None:
    """Ask the broker for every device's account; create again those it does not know."""
    answers = await accounts.run(
        [{"command": "getClient", "username": d} for d, _ in credentials],
        tolerate=frozenset({"Client not found"}),
    )
    missing = [c for c, a in zip(credentials, answers, strict=True) if a.get("error")]
    if missing:
        print(f"  {len(missing)} device accounts missing at the broker; created again")
        await accounts.add_devices(missing)


async def count_stored(database_url: str) -> int:
    """Telemetry values in the store."""
    from m2mhub.store import open_store

    async with open_store(database_url) as store:
        return await store.count_points()


def scrape_metric(metrics: str, name: str) -> int:
    """One value of the server's /metrics text, e.g. ``m2mhub_ingest_values_total``."""
    for line in metrics.splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            return int(float(line.split()[-1]))
    return 0


# -- the server -------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class Server:
    """An ``m2mhub serve`` process on 127.0.0.1."""

    process: subprocess.Popen[bytes]
    port: int
    log: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def cpu_seconds(self) -> float:
        """User + system CPU time of the server process (all its threads) so far."""
        return process_cpu_seconds(self.process.pid)


@contextlib.contextmanager
def run_server(
    database_url: str,
    workdir: Path,
    *,
    roles: str = "api",
    env: Mapping[str, str] | None = None,
) -> Iterator[Server]:
    """Start ``python -m m2mhub serve`` on a free port; stop it on exit, whatever happens.

    MQTT is off unless ``env`` turns it on (``M2MHUB_MQTT_ENABLED``, ``M2MHUB_MQTT_URL``...).
    """
    port = free_port()
    environment = {
        **os.environ,
        "M2MHUB_DATA_DIR": str(workdir / "data"),
        "M2MHUB_DATABASE_URL": database_url,
        "M2MHUB_HOST": "127.0.0.1",
        "M2MHUB_PORT": str(port),
        "M2MHUB_ROLES": roles,
        "M2MHUB_LOG_LEVEL": "WARNING",
        "M2MHUB_MQTT_ENABLED": "false",
        # An empty config file: the user's own must not change the figures.
        "M2MHUB_CONFIG": str(workdir / "bench.toml"),
        **(env or {}),
    }
    (workdir / "bench.toml").write_text("")
    log = workdir / f"server-{port}.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "m2mhub", "serve"],
            env=environment,
            cwd=workdir,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    server = Server(process, port, log)
    try:
        _wait_ready(server)
        yield server
    finally:
        _stop(process)


def _wait_ready(server: Server, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(f"the server exited at start:\n{server.log.read_text()[-3000:]}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{server.url}/healthz", timeout=1).status_code == 200:
                return
        time.sleep(0.1)
    raise RuntimeError(f"the server did not answer within {timeout:g} s")


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


# -- Mosquitto ---------------------------------------------------------------------------------


@dataclass
class Mosquitto:
    """A Mosquitto of the benchmark's own, configured as docs/mqtt.md recommends."""

    process: subprocess.Popen[bytes]
    port: int
    admin: str
    password: str
    directory: Path

    def env(self) -> dict[str, str]:
        """The settings that point an m2mhub process at this broker."""
        return {
            "M2MHUB_MQTT_URL": f"mqtt://127.0.0.1:{self.port}",
            "M2MHUB_MQTT_USERNAME": self.admin,
            "M2MHUB_MQTT_PASSWORD": self.password,
        }

    def cpu_seconds(self) -> float:
        return process_cpu_seconds(self.process.pid)


def mosquitto_missing() -> str | None:
    """Why Mosquitto cannot run here, or None."""
    missing = [n for n in ("mosquitto", "mosquitto_ctrl", "mosquitto_sub") if not shutil.which(n)]
    if not _dynsec_plugin():
        missing.append("mosquitto_dynamic_security.so")
    return f"{', '.join(missing)} not installed" if missing else None


def _dynsec_plugin() -> str | None:
    found = glob.glob("/usr/lib/*/mosquitto_dynamic_security.so")
    found += glob.glob("/usr/lib/mosquitto_dynamic_security.so")
    return found[0] if found else None


@contextlib.contextmanager
def run_mosquitto(directory: Path) -> Iterator[Mosquitto]:
    """Mosquitto on a free loopback port with dynamic security, ``max_queued_messages 0``
    and ``set_tcp_nodelay true`` (docs/mqtt.md); stopped on exit, whatever happens."""
    directory.mkdir(parents=True, exist_ok=True)
    password = secrets.token_hex(16)  # no leading "-": mosquitto_ctrl would read an option
    dynsec = directory / "dynamic-security.json"
    subprocess.run(
        ["mosquitto_ctrl", "dynsec", "init", str(dynsec), "m2mhub", password],
        check=True,
        capture_output=True,
    )
    _grant_platform_role(dynsec)
    port = free_port()
    config = directory / "mosquitto.conf"
    config.write_text(
        f"user {getpass.getuser()}\n"
        f"listener {port} 127.0.0.1\n"
        "allow_anonymous false\n"
        f"plugin {_dynsec_plugin()}\n"
        f"plugin_opt_config_file {dynsec}\n"
        "persistence true\n"
        f"persistence_location {directory}/\n"
        "max_queued_messages 0\n"
        "set_tcp_nodelay true\n"
        f"log_dest file {directory}/mosquitto.log\n"
    )
    process = subprocess.Popen(
        ["mosquitto", "-c", str(config)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        wait_listening(port, process)
        yield Mosquitto(process, port, "m2mhub", password, directory)
    finally:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _grant_platform_role(dynsec: Path) -> None:
    """Give m2mhub's account its ``m2mhub-platform`` role in the file, before Mosquitto starts.

    m2mhub would grant it at its first connection, and Mosquitto would drop that
    connection meanwhile; answers to the account commands sent right after could
    then be matched to the wrong commands (seen with 1,000 devices: the accounts of
    the last devices were missing). A broker set up beforehand avoids that.
    """
    data = json.loads(dynsec.read_text())
    acls = [
        {"acltype": acl, "topic": "m2m/#", "priority": 0, "allow": True}
        for acl in ("publishClientSend", "publishClientReceive", "subscribePattern")
    ]
    data.setdefault("roles", []).append({"rolename": "m2mhub-platform", "acls": acls})
    for client in data.get("clients", []):
        if client.get("username") == "m2mhub":
            client.setdefault("roles", []).append({"rolename": "m2mhub-platform"})
    dynsec.write_text(json.dumps(data))


def wait_listening(port: int, process: subprocess.Popen[bytes], timeout: float = 30.0) -> None:
    """Return once something accepts connections on 127.0.0.1:``port``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{process.args!r} exited with status {process.returncode}")
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.02)
    raise RuntimeError(f"nothing listened on port {port} within {timeout:g} s")


# -- memory --------------------------------------------------------------------------------


def rss_mb(pid: int) -> float:
    """Resident memory of one process (VmRSS), in MiB."""
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


# -- CPU accounting -------------------------------------------------------------------------


def process_cpu_seconds(pid: int) -> float:
    """utime + stime of one process from /proc (all threads), in seconds."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def postgres_cpu_seconds() -> float:
    """CPU time of every ``postgres`` process on this machine (server and backends).

    Exited backends are not counted, so connections must outlive the measurement;
    both benchmarks keep theirs open.
    """
    total = 0.0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            if (entry / "comm").read_text().strip().startswith("postgres"):
                total += process_cpu_seconds(int(entry.name))
    return total


@dataclass
class CpuMeter:
    """CPU seconds of this process, the server and PostgreSQL over one interval."""

    server: Server | None = None
    with_postgres: bool = False
    start: dict[str, float] = field(default_factory=dict)
    used: dict[str, float] = field(default_factory=dict)

    def _sample(self) -> dict[str, float]:
        sample = {"load generator": time.process_time()}
        if self.server is not None:
            sample["server"] = self.server.cpu_seconds()
        if self.with_postgres:
            sample["postgres"] = postgres_cpu_seconds()
        return sample

    def __enter__(self) -> CpuMeter:
        self.start = self._sample()
        return self

    def __exit__(self, *exc: object) -> None:
        end = self._sample()
        self.used = {k: end[k] - self.start[k] for k in end}

    def describe(self, seconds: float) -> str:
        """CPU use in cores (of the machine's), e.g. ``server 1.62, load generator 0.31``."""
        parts = [f"{name} {used / seconds:.2f}" for name, used in self.used.items()]
        return f"CPU cores busy: {', '.join(parts)} (of {os.cpu_count()})"


# -- timing ----------------------------------------------------------------------------------


@dataclass
class Timing:
    """Repeated runs of one operation, in milliseconds."""

    runs_ms: list[float]

    @property
    def median(self) -> float:
        return statistics.median(self.runs_ms)

    @property
    def best(self) -> float:
        return min(self.runs_ms)

    @property
    def worst(self) -> float:
        return max(self.runs_ms)

    def describe(self) -> str:
        return (
            f"median {self.median:8.1f} ms  best {self.best:8.1f} ms  "
            f"worst {self.worst:8.1f} ms  ({len(self.runs_ms)} runs)"
        )


def percentile(values: Sequence[float], quantile: float) -> float:
    """The value below which ``quantile`` of ``values`` lie (nearest rank)."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * quantile))]


def spread(values: Sequence[float], fmt: str = ",.0f") -> str:
    """``median (min-max)`` of repeated measurements, e.g. ``31,200 (29,800-33,100)``."""
    if len(values) == 1:
        return format(values[0], fmt)
    middle = statistics.median(values)
    return f"{middle:{fmt}} ({min(values):{fmt}}-{max(values):{fmt}})"


def time_calls(call: Callable[[], Any], repeat: int) -> tuple[Timing, Any]:
    """Run ``call`` ``repeat`` times; its timings and last result."""
    runs = []
    result: Any = None
    for _ in range(repeat):
        start = time.perf_counter()
        result = call()
        runs.append((time.perf_counter() - start) * 1000)
    return Timing(runs), result


def new_parser(doc: str | None) -> argparse.ArgumentParser:
    """The options every benchmark has: which stores, and which PostgreSQL."""
    parser = argparse.ArgumentParser(
        description=doc, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--backends", "--store", default="sqlite,postgres", help="sqlite, postgres or both"
    )
    parser.add_argument(
        "--pg-url",
        default=DEFAULT_PG_URL,
        help="PostgreSQL to use (a private schema is created and dropped)",
    )
    return parser


def rule(title: str) -> None:
    print(f"\n== {title} " + "=" * max(0, 76 - len(title)), flush=True)


def run_async(coro: Coroutine[Any, Any, T]) -> T:
    """Run ``coro`` to the end on a fresh event loop: uvloop's when installed, as the server's."""
    try:
        import uvloop
    except ImportError:
        loop = asyncio.new_event_loop()
    else:
        loop = uvloop.new_event_loop()
    try:
        return loop.run_until_complete(coro)
    finally:
        loop.close()
