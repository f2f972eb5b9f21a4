"""``m2mhub demo`` run as a user runs it: a process that prints credentials, then serves.

The demo's output is read line by line while it runs; the credentials it
prints are used against its API before it stops by itself.
"""

from __future__ import annotations

import contextlib
import queue
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from m2mhub.sim import load_fleet
from tests.conftest import free_port
from tests.processes import m2mhub_env, run_m2mhub

#: The fleet the demo simulates (m2mhub/sim/fleet.yaml).
DEMO_DEVICES = {d.id for d in load_fleet().devices}
BANNER_TIMEOUT_S = 30.0

URL_LINE = re.compile(r"running at\s+(http://\S+)")
ADMIN_KEY_LINE = re.compile(r"admin API key:\s*(m2k_[0-9a-f]+_[A-Za-z0-9_-]+)")
DEVICE_TOKEN_LINE = re.compile(r"device\s+(\S+)\s+token:\s*(m2d_[A-Za-z0-9_-]+)")
BANNER_END = "Ctrl-C stops."
CONSOLE_LINE = re.compile(r"console:\s*\S+\s+user\s+(\S+)\s+password\s+(\S+)")


class Demo:
    """A running ``m2mhub demo`` whose standard output is collected as it comes."""

    def __init__(self, env: dict[str, str], *args: str) -> None:
        self.stderr = Path(env["M2MHUB_DATA_DIR"]) / f"demo-{time.monotonic_ns()}.err"
        with self.stderr.open("wb") as sink:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "m2mhub", "demo", *args],
                env=env,
                cwd=env["M2MHUB_DATA_DIR"],
                stdout=subprocess.PIPE,
                stderr=sink,
                text=True,
            )
        self._lines: queue.Queue[str | None] = queue.Queue()
        self.stdout = ""
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self._lines.put(line)
        self._lines.put(None)

    def read_until(self, text: str, timeout: float = BANNER_TIMEOUT_S) -> str:
        """Everything printed so far, once ``text`` was printed."""
        deadline = time.monotonic() + timeout
        while text not in self.stdout:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                pytest.fail(f"the demo did not print {text!r} in {timeout} s:\n{self.output()}")
            try:
                line = self._lines.get(timeout=remaining)
            except queue.Empty:
                continue
            if line is None:
                pytest.fail(f"the demo exited before printing {text!r}:\n{self.output()}")
            self.stdout += line
        return self.stdout

    def wait(self, timeout: float) -> int:
        """The exit code, once the process ended and all its output was read."""
        code = self.process.wait(timeout=timeout)
        self._reader.join(timeout=10)
        with contextlib.suppress(queue.Empty):
            while (line := self._lines.get_nowait()) is not None:
                self.stdout += line
        return code

    def output(self) -> str:
        return f"stdout:\n{self.stdout}\nstderr (tail):\n{self.stderr.read_text()[-3000:]}"

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)


@contextlib.contextmanager
def running_demo(env: dict[str, str], *args: str) -> Iterator[Demo]:
    demo = Demo(env, *args)
    try:
        yield demo
    finally:
        demo.stop()


def banner(demo: Demo) -> tuple[str, str, str, str]:
    """(url, admin key, device id, device token) as the demo printed them."""
    printed = demo.read_until(BANNER_END)
    url = URL_LINE.search(printed)
    key = ADMIN_KEY_LINE.search(printed)
    device = DEVICE_TOKEN_LINE.search(printed)
    assert url and key and device, f"credentials missing from the banner:\n{printed}"
    return url.group(1), key.group(1), device.group(1), device.group(2)


def all_latest(client: httpx.Client) -> dict[str, dict[str, Any]]:
    response = client.get("/api/v1/latest")
    assert response.status_code == 200, response.text
    return {d["device"]: d["values"] for d in response.json()}


# -- tests -------------------------------------------------------------------------------


@pytest.mark.slow
def test_demo_serves_its_fleet_stops_by_itself_and_resumes(tmp_path: Path) -> None:
    env = m2mhub_env(tmp_path)
    port = free_port()
    duration = 15  # long enough for the whole fleet to connect and report on a busy host
    with running_demo(
        env, "--port", str(port), "--interval", "1", "--duration", str(duration)
    ) as demo:
        url, key, device_id, token = banner(demo)
        assert url == f"http://127.0.0.1:{port}"
        assert device_id in DEMO_DEVICES
        admin = {"Authorization": f"Bearer {key}"}
        with httpx.Client(base_url=url, headers=admin, timeout=10) as client:
            # Every simulated device reports within a couple of intervals.
            deadline = time.monotonic() + 15
            while True:
                reported = {d for d, values in all_latest(client).items() if values}
                if reported == DEMO_DEVICES:
                    break
                assert time.monotonic() < deadline, f"only {sorted(reported)} reported"
                time.sleep(0.1)  # poll interval, bounded by the deadline above
            # The device token posts what the banner suggests.
            posted = client.post(
                f"/api/v1/devices/{device_id}/telemetry",
                json={"temperature_c": 22.5},
                headers={"Authorization": f"Bearer {token}"},
            )
            assert posted.status_code == 200, posted.text
            first_run = client.get(f"/api/v1/devices/{device_id}/latest").json()
            assert first_run["values"]["temperature_c"]["value"] == 22.5
            # The console account the banner names signs in.
            console = CONSOLE_LINE.search(demo.stdout)
            assert console, demo.output()
            with httpx.Client(base_url=url, timeout=10) as browser:
                form = browser.get("/console/login")
                login_token = re.search(r'name="login_token" value="([^"]+)"', form.text)
                assert login_token, form.text
                signed_in = browser.post(
                    "/console/login",
                    data={
                        "email": console.group(1),
                        "password": console.group(2),
                        "login_token": login_token.group(1),
                    },
                )
                assert signed_in.status_code in (200, 303), signed_in.text
                assert browser.get("/api/v1/devices/meter-001").status_code == 200
            status = client.get("/api/v1/status")
            assert status.status_code == 200, status.text
            counts = status.json()
            assert counts["never_seen"] == 0
            assert counts["online"] + counts["offline"] == len(DEMO_DEVICES)

        assert demo.wait(timeout=duration + 30) == 0, demo.output()
    sent = re.search(r"fleet sent (\d+) reports, (\d+) failed", demo.stdout)
    assert sent, demo.output()
    assert int(sent.group(1)) >= len(DEMO_DEVICES)
    assert int(sent.group(2)) == 0
    assert "run it again to resume" in demo.stdout

    # A second run on the same data directory resumes: same credentials, earlier data.
    with running_demo(env, "--port", str(free_port()), "--interval", "1") as demo:
        url, key_again, device_again, token_again = banner(demo)
        assert (key_again, device_again, token_again) == (key, device_id, token)
        with httpx.Client(base_url=url, timeout=10) as client:
            client.headers["Authorization"] = f"Bearer {key}"
            kept = first_run["values"]["temperature_c"]
            history = client.get(
                f"/api/v1/devices/{device_id}/telemetry",
                params={
                    "keys": "temperature_c",
                    "from": str(kept["ts"]),
                    "to": str(kept["ts"] + 1),
                },
            )
            assert history.status_code == 200, history.text
            assert [p["value"] for p in history.json()["items"]] == [22.5]
            for key_name, value in first_run["values"].items():
                earlier = client.get(
                    f"/api/v1/devices/{device_id}/telemetry",
                    params={"keys": key_name, "from": str(value["ts"]), "to": str(value["ts"] + 1)},
                )
                assert [p["value"] for p in earlier.json()["items"]] == [value["value"]]
            assert client.get("/api/v1/devices").json()["items"], "the demo devices are gone"
        # Ctrl-C stops the demo cleanly.
        demo.process.send_signal(signal.SIGINT)
        assert demo.wait(timeout=60) == 0, demo.output()
    assert "demo stopped" in demo.stdout


def test_demo_prints_commands_a_user_can_paste(tmp_path: Path) -> None:
    """Each suggested command is one line, even when the output is not a wide terminal."""
    port = free_port()
    env = m2mhub_env(tmp_path)
    with running_demo(env, "--port", str(port), "--interval", "1", "--duration", "0.5") as demo:
        assert demo.wait(timeout=60) == 0, demo.output()
    url = f"http://127.0.0.1:{port}"
    lines = demo.stdout.splitlines()
    commands = [line.strip() for line in lines if line.strip().startswith("curl")]
    assert len(commands) == 3, demo.output()
    for command in commands:
        assert re.search(r"Authorization: Bearer m2[kd]_\S+'", command), command
        assert f"{url}/api/v1/" in command, f"the command is cut short:\n{command}"
    assert any(url in line and f"{url}/docs" in line for line in lines), demo.output()


def test_demo_on_a_busy_port_says_so(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run_m2mhub(
            "demo", "--port", str(port), "--duration", "5", env=m2mhub_env(tmp_path), timeout=60
        )
    printed = result.stdout + result.stderr
    assert result.returncode != 0, printed
    assert "Traceback" not in printed, printed
    assert str(port) in printed


@pytest.mark.slow
def test_the_demo_rules_fire_alarm_command_and_webhook(tmp_path: Path) -> None:
    """At high speed the water tower runs low within seconds: the M2M loop closes."""
    env = m2mhub_env(tmp_path)
    with running_demo(
        env, "--port", str(free_port()), "--speed", "1000", "--backfill", "0", "--duration", "60"
    ) as demo:
        url, key, _, _ = banner(demo)
        # The rule's webhook reached the receiver the demo runs beside m2mhub, signed.
        # about 25 s on an idle machine: the tank runs low after some hours of device time
        printed = demo.read_until("webhook received: raised by rule fill-tank-north", timeout=120)
        assert "signed sha256=" in printed
        with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {key}"}) as client:
            alarms = client.get("/api/v1/alarms", params={"rule": "fill-tank-north"}).json()
            assert [a["device"] for a in alarms["items"]] == ["tank-north"]
            # The pump's type declares the command the rule sends (and the device handles).
            pump_type = client.get("/api/v1/device-types/pump").json()
            assert [m["name"] for m in pump_type["methods"]] == ["set_pump"]
            # The pump got its command over MQTT and answered it through the SDK.
            deadline = time.monotonic() + 20
            while True:
                commands = client.get("/api/v1/devices/pump-north/commands").json()
                if any(c["status"] == "succeeded" for c in commands):
                    break
                assert time.monotonic() < deadline, commands
                time.sleep(0.1)  # poll interval, bounded by the deadline above
            first = next(c for c in commands if c["status"] == "succeeded")
            assert (first["method"], first["params"], first["created_by"]) == (
                "set_pump",
                {"on": True},
                "rule:fill-tank-north",
            )
        demo.process.send_signal(signal.SIGINT)
        assert demo.wait(timeout=60) == 0, demo.output()
