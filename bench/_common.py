"""What the benchmarks share: the machine, temporary stores, a server process, timing.

Every resource here is owned by a context manager, so a benchmark that fails
or is interrupted still removes its files, its PostgreSQL schema and its
server process.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import shutil
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psycopg

DEFAULT_PG_URL = "postgresql://postgres@127.0.0.1:5432/test"
HOUR_MS = 3_600_000


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
def run_server(database_url: str, workdir: Path, *, roles: str = "api") -> Iterator[Server]:
    """Start ``python -m m2mhub serve`` on a free port; stop it on exit, whatever happens."""
    port = free_port()
    env = {
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
    }
    (workdir / "bench.toml").write_text("")
    log = workdir / f"server-{port}.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "m2mhub", "serve"],
            env=env,
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
    parser.add_argument("--backends", default="sqlite,postgres", help="sqlite, postgres or both")
    parser.add_argument(
        "--pg-url",
        default=DEFAULT_PG_URL,
        help="PostgreSQL to use (a private schema is created and dropped)",
    )
    return parser


def rule(title: str) -> None:
    print(f"\n== {title} " + "=" * max(0, 76 - len(title)), flush=True)
