"""``m2mhub simulate``: the load generator against real platforms, run as a user runs it.

Each platform is a real ``m2mhub serve`` process (embedded broker, or Mosquitto
with dynamic security); the generator runs as its own process and provisions
its devices through the API. What the summary says was acknowledged is then
counted in the platform's store.
"""

from __future__ import annotations

import csv
import re
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import msgspec
import pytest

from m2mhub.sim import loadvalues
from m2mhub.sim.loadgen import LoadError, LoadSpec, SimDevice
from tests.mosquitto import Mosquitto, start_mosquitto
from tests.processes import Server, fails, m2mhub_env, ok, run_m2mhub, search, serving

ADMIN_KEY_LINE = re.compile(r"admin API key[^:\n]*:\s*(m2k_[0-9a-f]+_[A-Za-z0-9_-]+)")
SUMMARY = re.compile(r"sent (\d+), acknowledged (\d+), failed (\d+), \d+ msg/s")
#: Far above what the tests send: the platform's per-device limit must not refuse any.
DEVICE_RATE = "100000"


def summary(output: str) -> tuple[int, int, int]:
    found = SUMMARY.search(output)
    assert found, f"no summary in:\n{output}"
    sent, acked, failed = (int(x) for x in found.groups())
    return sent, acked, failed


def stored(data_dir: Path) -> dict[str, list[dict[str, float]]]:
    """Every device's readings in the store, in time order: {device id: [values, ...]}."""
    with sqlite3.connect(data_dir / "m2mhub.db") as db:
        rows = db.execute(
            "SELECT d.id, t.ts, k.name, t.num FROM telemetry t "
            "JOIN devices d ON d.pk = t.device_pk JOIN keys k ON k.id = t.key_id "
            "ORDER BY d.id, t.ts, k.name"
        ).fetchall()
    readings: dict[tuple[str, int], dict[str, float]] = {}
    for device, ts, key, value in rows:
        readings.setdefault((device, ts), {})[key] = value
    out: dict[str, list[dict[str, float]]] = {}
    for (device, _), values in readings.items():
        out.setdefault(device, []).append(values)
    return out


def stored_when(
    data_dir: Path, prefix: str, total: int, *, timeout_s: float = 30.0
) -> dict[str, list[dict[str, float]]]:
    """The readings of devices named ``prefix...`` once ``total`` are stored (or at the deadline).

    A broker acknowledges a message when it has it; m2mhub, its subscriber, stores
    it a moment later.
    """
    deadline = time.monotonic() + timeout_s
    while True:
        readings = {d: r for d, r in stored(data_dir).items() if d.startswith(prefix)}
        if sum(map(len, readings.values())) >= total or time.monotonic() > deadline:
            return readings
        time.sleep(0.05)  # polled until the deadline above


def write_tokens(path: Path, rows: list[tuple[str, str]]) -> Path:
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["id", "name", "token"])
        writer.writerows((i, i, t) for i, t in rows)
    return path


def tokens_of(path: Path) -> list[tuple[str, str]]:
    with path.open() as handle:
        return [(row["id"], row["token"]) for row in csv.DictReader(handle)]


class Hub:
    """A platform, its admin key and its data directory."""

    def __init__(self, env: dict[str, str], server: Server, key: str) -> None:
        self.env, self.server, self.key = env, server, key
        self.data_dir = Path(env["M2MHUB_DATA_DIR"])
        self.broker = f"mqtt://127.0.0.1:{env.get('BROKER_PORT', env['M2MHUB_MQTT_PORT'])}"

    def simulate(self, *args: str) -> tuple[int, str]:
        result = run_m2mhub("simulate", "--api", self.server.url, *args, env=self.env)
        printed = result.stdout + result.stderr
        assert "Traceback" not in printed, printed
        return result.returncode, printed


@pytest.fixture(scope="module")
def embedded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hub]:
    """``m2mhub serve`` with its embedded broker."""
    env = m2mhub_env(tmp_path_factory.mktemp("embedded"), M2MHUB_MQTT_DEVICE_RATE=DEVICE_RATE)
    key = search(ADMIN_KEY_LINE, ok("tenant", "create", "load", env=env))
    env["M2MHUB_TENANT"] = "load"
    with serving(env, Path(env["M2MHUB_DATA_DIR"]) / "serve.log") as server:
        yield Hub(env, server, key)


@pytest.fixture(scope="module")
def mosquitto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mosquitto]:
    broker = start_mosquitto(tmp_path_factory.mktemp("mosquitto"))
    try:
        yield broker
    finally:
        broker.stop()


@pytest.fixture(scope="module")
def external(tmp_path_factory: pytest.TempPathFactory, mosquitto: Mosquitto) -> Iterator[Hub]:
    """``m2mhub serve`` on Mosquitto: devices get broker accounts when provisioned."""
    env = m2mhub_env(
        tmp_path_factory.mktemp("external"),
        M2MHUB_MQTT_URL=f"mqtt://127.0.0.1:{mosquitto.port}",
        M2MHUB_MQTT_USERNAME=mosquitto.admin,
        M2MHUB_MQTT_PASSWORD=mosquitto.password,
        M2MHUB_MQTT_DEVICE_RATE=DEVICE_RATE,
        BROKER_PORT=str(mosquitto.port),
    )
    key = search(ADMIN_KEY_LINE, ok("tenant", "create", "load", env=env))
    with serving(env, Path(env["M2MHUB_DATA_DIR"]) / "serve.log") as server:
        yield Hub(env, server, key)


def provision(hub: Hub, tmp_path: Path, prefix: str, devices: int, *extra: str) -> Path:
    """Provision ``devices`` devices with a first bounded run; returns the tokens file."""
    tokens = tmp_path / f"{prefix}.csv"
    code, printed = hub.simulate(
        "--provision", "--key", hub.key, "--prefix", prefix, "--devices", str(devices),
        "--tokens", str(tokens), "--broker", hub.broker, *extra,
    )  # fmt: skip
    assert code == 0, printed
    return tokens


# -- against platforms --------------------------------------------------------------------


def test_mqtt_run_stores_exactly_what_was_acknowledged(embedded: Hub, tmp_path: Path) -> None:
    tokens = provision(embedded, tmp_path, "emb", 10, "--count", "500", "--seed", "7")
    code, printed = embedded.simulate("--tokens", str(tokens), "--count", "500", "--seed", "7",
                                      "--broker", embedded.broker)  # fmt: skip
    assert code == 0, printed
    assert summary(printed) == (500, 500, 0)
    readings = stored_when(embedded.data_dir, "emb-", 1000)
    assert sorted(readings) == [f"emb-{i:05d}" for i in range(1, 11)]
    assert sum(len(r) for r in readings.values()) == 1000  # both runs, 50 + 50 per device
    # The values are the seed's: the same 50 readings in each run, in the order sent.
    expected = loadvalues.readings("random", 5, 7, "emb-00003", 50)
    assert readings["emb-00003"] == expected + expected


def test_http_run_with_batches_stores_exactly_what_was_acknowledged(
    embedded: Hub, tmp_path: Path
) -> None:
    tokens = provision(embedded, tmp_path, "web", 4, "--count", "4")
    code, printed = embedded.simulate("--transport", "http", "--tokens", str(tokens),
                                      "--count", "203", "--batch", "10", "--connections", "4",
                                      "--model", "electricity_meter", "--seed", "3")  # fmt: skip
    assert code == 0, printed
    assert summary(printed) == (203, 203, 0)
    readings = stored_when(embedded.data_dir, "web-", 4 + 203)
    # 1 reading each from provisioning, then 51, 51, 51 and 50.
    assert [len(readings[f"web-{i:05d}"]) for i in range(1, 5)] == [52, 52, 52, 51]
    meter = loadvalues.readings("electricity_meter", 5, 3, "web-00002", 51)
    assert readings["web-00002"][1:] == meter


def test_a_refused_token_counts_as_failed_over_mqtt_and_http(embedded: Hub, tmp_path: Path) -> None:
    good = tokens_of(provision(embedded, tmp_path, "bad", 4, "--count", "4"))
    tokens = write_tokens(tmp_path / "mixed.csv", [*good[:3], (good[3][0], "m2d_wrong")])
    for transport in ("mqtt", "http"):
        args = ["--transport", transport, "--tokens", str(tokens), "--count", "100"]
        code, printed = embedded.simulate(*args, "--broker", embedded.broker)
        assert code == 1, printed
        sent = 100 if transport == "http" else 75  # over MQTT a refused device sends nothing
        assert summary(printed) == (sent, 75, 25)
    readings = stored_when(embedded.data_dir, "bad-", 154)
    assert [len(readings[i]) for i, _ in good] == [51, 51, 51, 1]


def test_sdk_mode_through_mosquitto(external: Hub, tmp_path: Path) -> None:
    tokens = provision(external, tmp_path, "mq", 5, "--count", "5")
    code, printed = external.simulate("--sdk", "--tokens", str(tokens), "--count", "100",
                                      "--rate", "200", "--broker", external.broker)  # fmt: skip
    assert code == 0, printed
    assert summary(printed) == (100, 100, 0)
    code, printed = external.simulate("--tokens", str(tokens), "--count", "1000", "--qos", "1",
                                      "--broker", external.broker, "--json")  # fmt: skip
    assert code == 0, printed
    result = msgspec.json.decode(printed[printed.index("{") :])
    assert (result["sent"], result["acknowledged"], result["failed"]) == (1000, 1000, 0)
    readings = stored_when(external.data_dir, "mq-", 5 * 221)
    assert {d: len(r) for d, r in readings.items()} == {f"mq-{i:05d}": 221 for i in range(1, 6)}


# -- options ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--devices", "0"], "error: devices: must be at least 1"),
        (["--transport", "ftp"], "error: transport: 'ftp' is not mqtt or http"),
        (["--qos", "2"], "error: qos: must be 0 or 1"),
        (["--model", "boat"], "error: model: unknown model 'boat'"),
        (["--keys", "9"], "error: keys: must be 1 to 5"),
        (["--rate", "-1"], "error: rate: must be 0"),
        (["--broker", "http://x"], "error: broker: 'http://x' is not mqtt://host:port"),
        (["--transport", "http"], "error: tokens: device 'sim-00001' has no token"),
        (["--provision"], "error: key: --provision needs an admin API key"),
        (["--workers", "3", "--devices", "2"], "error: workers: must not exceed"),
    ],
)
def test_bad_options_are_named(tmp_path: Path, args: list[str], message: str) -> None:
    printed = fails("simulate", "--count", "1", *args, env=m2mhub_env(tmp_path))
    assert message in printed


def test_values_are_deterministic_per_seed_and_device() -> None:
    first = loadvalues.readings("electricity_meter", 5, 42, "m-1", 20)
    assert first == loadvalues.readings("electricity_meter", 5, 42, "m-1", 20)
    assert first != loadvalues.readings("electricity_meter", 5, 43, "m-1", 20)
    assert first != loadvalues.readings("electricity_meter", 5, 42, "m-2", 20)
    assert set(first[0]) == {"power_kw", "energy_kwh", "voltage_v"}
    assert list(loadvalues.readings("random", 3, 1, "x", 1)[0]) == [
        "temperature_c", "humidity_pct", "pressure_hpa",
    ]  # fmt: skip


def test_a_count_splits_evenly_and_workers_keep_each_device_quota() -> None:
    spec = LoadSpec(devices=tuple(SimDevice(f"d{i}") for i in range(5)), count=13, workers=2)
    assert [spec.quota(i) for i in range(5)] == [3, 3, 3, 2, 2]
    shares = [spec.share(w) for w in range(2)]
    assert [[d.id for d in s.devices] for s in shares] == [["d0", "d2", "d4"], ["d1", "d3"]]
    assert [[s.quota(i) for i in range(len(s.devices))] for s in shares] == [[3, 3, 2], [3, 2]]


def test_a_run_needs_a_bound() -> None:
    with pytest.raises(LoadError, match="count: give --count or --duration"):
        LoadSpec(devices=(SimDevice("d"),))
