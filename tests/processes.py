"""Running m2mhub as real processes, the way a user does: commands and servers."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.conftest import free_port

#: How long a process may take to answer /healthz (a cold start on a busy CI host).
START_TIMEOUT_S = 30.0


def m2mhub_env(data_dir: Path, **extra: str) -> dict[str, str]:
    """A user's environment: this data directory and no stray ``M2MHUB_*`` settings."""
    data_dir.mkdir(parents=True, exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("M2MHUB_")}
    env["M2MHUB_DATA_DIR"] = str(data_dir)
    # No m2mhub.toml from whatever directory the tests run in.
    config = data_dir / "empty-m2mhub.toml"
    config.touch()
    env["M2MHUB_CONFIG"] = str(config)
    # The embedded MQTT broker must not collide with a broker already on 1883.
    env["M2MHUB_MQTT_PORT"] = str(free_port())
    env.update(extra)
    return env


def run_m2mhub(
    *args: str, env: dict[str, str], cwd: Path | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """``m2mhub ARGS...`` to completion, output captured."""
    return subprocess.run(
        [sys.executable, "-m", "m2mhub", *args],
        env=env,
        cwd=cwd or env["M2MHUB_DATA_DIR"],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def ok(*args: str, env: dict[str, str], cwd: Path | None = None) -> str:
    """``m2mhub ARGS...`` that must succeed; its standard output."""
    result = run_m2mhub(*args, env=env, cwd=cwd)
    assert result.returncode == 0, (
        f"m2mhub {' '.join(args)} exited {result.returncode}\n"
        f"stdout:\n{result.stdout}\nstderr:\n{result.stderr}"
    )
    return result.stdout


def fails(*args: str, env: dict[str, str], cwd: Path | None = None) -> str:
    """``m2mhub ARGS...`` that must fail plainly (exit 2, no traceback); what it printed."""
    result = run_m2mhub(*args, env=env, cwd=cwd)
    printed = result.stdout + result.stderr
    assert "Traceback" not in printed, f"m2mhub {' '.join(args)} crashed:\n{printed}"
    assert result.returncode == 2, f"m2mhub {' '.join(args)} exited {result.returncode}:\n{printed}"
    return printed


def search(pattern: re.Pattern[str], text: str) -> str:
    found = pattern.search(text)
    assert found, f"{pattern.pattern!r} not in output:\n{text}"
    return found.group(1)


@dataclass
class Server:
    """A running ``m2mhub serve`` process."""

    process: subprocess.Popen[bytes]
    url: str
    log: Path

    def client(self, credential: str | None = None) -> httpx.Client:
        headers = {"Authorization": f"Bearer {credential}"} if credential else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=30)

    def kill(self) -> None:
        """``kill -9``: no shutdown handlers run, nothing is flushed."""
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)

    def output(self) -> str:
        return self.log.read_text(errors="replace")


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=10)


def _wait_until_healthy(server: Server) -> bool:
    """True once /healthz answers 200; False if the process exited first."""
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            return False
        try:
            if httpx.get(f"{server.url}/healthz", timeout=2).status_code == 200:
                return True
        except httpx.TransportError:
            pass
        time.sleep(0.05)  # poll interval, bounded by the deadline above
    pytest.fail(f"m2mhub serve did not answer /healthz in {START_TIMEOUT_S} s:\n{server.output()}")


@contextlib.contextmanager
def serving(env: dict[str, str], log: Path) -> Iterator[Server]:
    """``m2mhub serve`` on a free port of 127.0.0.1, healthy, stopped on exit."""
    for _ in range(3):  # another process may take the free port before the server binds it
        port = free_port()
        server_env = {**env, "M2MHUB_HOST": "127.0.0.1", "M2MHUB_PORT": str(port)}
        with log.open("ab") as sink:
            process = subprocess.Popen(
                [sys.executable, "-m", "m2mhub", "serve"],
                env=server_env,
                cwd=env["M2MHUB_DATA_DIR"],
                stdout=sink,
                stderr=subprocess.STDOUT,
            )
        server = Server(process, f"http://127.0.0.1:{port}", log)
        try:
            if _wait_until_healthy(server):
                yield server
                return
        finally:
            _stop(process)
        if "address already in use" not in server.output():
            break
    pytest.fail(f"m2mhub serve exited with {process.returncode}:\n{server.output()}")
