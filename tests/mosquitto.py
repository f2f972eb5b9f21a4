"""A Mosquitto of the test's own: dynamic security on, a free port, its own files."""

from __future__ import annotations

import getpass
import glob
import secrets
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import REQUIRE_SERVICES, free_port

START_TIMEOUT_S = 10.0


def dynsec_plugin() -> str | None:
    found = glob.glob("/usr/lib/*/mosquitto_dynamic_security.so") + glob.glob(
        "/usr/lib/mosquitto_dynamic_security.so"
    )
    return found[0] if found else None


@dataclass
class Mosquitto:
    process: subprocess.Popen[bytes]
    port: int
    admin: str
    password: str
    config: Path
    tls_port: int | None = None  # a TLS listener, when started with a certificate

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)

    def kill(self) -> None:
        self.process.kill()
        self.process.wait(timeout=10)

    def restart(self) -> None:
        """Start again on the same port, files and accounts (after stop or kill)."""
        self.process = _launch(self.config)
        _wait_listening(self.port, self.process)


@dataclass(frozen=True)
class ServerCertificate:
    """PEM files of a broker's certificate chain and key, and of the CA that signed them."""

    ca: Path
    chain: Path
    key: Path


def start_mosquitto(directory: Path, *, tls: ServerCertificate | None = None) -> Mosquitto:
    """Mosquitto with dynamic security; its admin account is what m2mhub connects with.

    With ``tls``, a second listener on another free port speaks MQTT over TLS.
    """
    plugin = dynsec_plugin()
    missing = [name for name in ("mosquitto", "mosquitto_ctrl") if shutil.which(name) is None] + (
        [] if plugin else ["mosquitto_dynamic_security.so"]
    )
    if missing:
        message = f"Mosquitto not installed here ({', '.join(missing)} missing)"
        if REQUIRE_SERVICES:
            pytest.fail(message + " (M2MHUB_REQUIRE_SERVICES=1)")
        pytest.skip(message)
    directory.mkdir(parents=True, exist_ok=True)
    password = secrets.token_hex(16)  # no leading "-": mosquitto_ctrl would read an option
    dynsec = directory / "dynamic-security.json"
    subprocess.run(
        ["mosquitto_ctrl", "dynsec", "init", str(dynsec), "m2mhub", password],
        check=True,
        capture_output=True,
    )
    port = free_port()
    config = directory / "mosquitto.conf"
    config.write_text(
        # Started as root, Mosquitto would become user "mosquitto", who cannot read
        # the test's private directory: stay the user who runs the tests.
        f"user {getpass.getuser()}\n"
        f"listener {port} 127.0.0.1\n"
        "allow_anonymous false\n"
        f"plugin {plugin}\n"
        f"plugin_opt_config_file {dynsec}\n"
        "persistence true\n"
        f"persistence_location {directory}/\n"
        "max_queued_messages 0\n"
        "set_tcp_nodelay true\n"
        f"log_dest file {directory}/mosquitto.log\n"
    )
    tls_port = None
    if tls is not None:
        tls_port = free_port()
        with config.open("a") as extra:
            extra.write(
                f"listener {tls_port} 127.0.0.1\n"
                f"cafile {tls.ca}\ncertfile {tls.chain}\nkeyfile {tls.key}\n"
            )
    process = _launch(config)
    _wait_listening(port, process)
    if tls_port is not None:
        _wait_listening(tls_port, process)
    return Mosquitto(process, port, "m2mhub", password, config, tls_port)


def _launch(config: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        ["mosquitto", "-c", str(config)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )


def _wait_listening(port: int, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(
                f"mosquitto exited: {process.stderr.read().decode() if process.stderr else ''}"
            )
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.02)
    pytest.fail(f"mosquitto did not listen on {port} within {START_TIMEOUT_S} s")
