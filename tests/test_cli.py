"""The ``m2mhub`` command line, run the way a user runs it: one process per command.

Management commands and a ``m2mhub serve`` process share one SQLite file, as
when an operator manages a running platform from its host. Process helpers live
in ``tests/processes.py``.
"""

from __future__ import annotations

import csv
import json
import re
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import paho.mqtt.client as paho
import psycopg
import pytest

from tests.conftest import POSTGRES_URL, require_postgres
from tests.processes import Server, fails, m2mhub_env, ok, run_m2mhub, search, serving

#: Device tokens and API keys verified by a server are trusted this long without
#: asking the store again (``_AUTH_CACHE_S`` in m2mhub/registry/service.py).
AUTH_CACHE_S = 10.0

API_KEY = re.compile(r"m2k_[0-9a-f]+_[A-Za-z0-9_-]+")
ADMIN_KEY_LINE = re.compile(r"admin API key[^:\n]*:\s*(m2k_[0-9a-f]+_[A-Za-z0-9_-]+)")
DEVICE_ID_LINE = re.compile(r"device id:\s*(\S+)")
TOKEN_LINE = re.compile(r"token \(shown once\):\s*(m2d_[A-Za-z0-9_-]+)")


def devices_of(client: httpx.Client) -> list[dict[str, Any]]:
    """Every device the client's tenant has, through the paginated API."""
    found: list[dict[str, Any]] = []
    params: dict[str, str] = {"limit": "1000"}
    while True:
        response = client.get("/api/v1/devices", params=params)
        assert response.status_code == 200, response.text
        page = response.json()
        found += page["items"]
        if not page["next_cursor"]:
            return found
        params["cursor"] = page["next_cursor"]


def post_reading(client: httpx.Client, device_id: str, token: str) -> httpx.Response:
    return client.post(
        f"/api/v1/devices/{device_id}/telemetry",
        json={"energy_kwh": 12.5},
        headers={"Authorization": f"Bearer {token}"},
    )


# -- fixtures --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def hub_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """One data directory for the module; each test works in a tenant of its own."""
    return m2mhub_env(tmp_path_factory.mktemp("hub"))


@pytest.fixture(scope="module")
def server(hub_env: dict[str, str]) -> Iterator[Server]:
    """``m2mhub serve`` on the module's data directory."""
    with serving(hub_env, Path(hub_env["M2MHUB_DATA_DIR"]) / "serve.log") as running:
        yield running


def new_tenant(env: dict[str, str], slug: str, *types: str) -> str:
    """A tenant with device types of no declared keys; its admin key."""
    key = search(ADMIN_KEY_LINE, ok("tenant", "create", slug, env=env))
    for name in types:
        ok("type", "create", name, "--tenant", slug, env=env)
    return key


def create_device(env: dict[str, str], slug: str, type_name: str, name: str) -> tuple[str, str]:
    printed = ok("device", "create", "--type", type_name, "--name", name, "-t", slug, env=env)
    return search(DEVICE_ID_LINE, printed), search(TOKEN_LINE, printed)


# -- help ------------------------------------------------------------------------------


def test_help_lists_the_commands(tmp_path: Path) -> None:
    printed = ok("--help", env=m2mhub_env(tmp_path))
    for command in ("serve", "demo", "tenant", "apikey", "type", "device", "db"):
        assert command in printed


def test_device_help_lists_its_commands(tmp_path: Path) -> None:
    printed = ok("device", "--help", env=m2mhub_env(tmp_path))
    for command in ("create", "list", "rotate-token", "import"):
        assert command in printed


def test_db_migrate_reports_the_schema_version(tmp_path: Path) -> None:
    printed = ok("db", "migrate", env=m2mhub_env(tmp_path))
    version = int(search(re.compile(r"schema version (\d+)"), printed))
    assert version >= 1
    assert (tmp_path / "m2mhub.db").is_file()


# -- tenants, types, devices -------------------------------------------------------------


def test_tenant_create_prints_an_admin_key_the_server_accepts(
    hub_env: dict[str, str], server: Server
) -> None:
    printed = ok("tenant", "create", "keyco", "--name", "Key Co", env=hub_env)
    assert "keyco" in printed
    key = search(ADMIN_KEY_LINE, printed)

    with server.client(key) as client:
        response = client.get("/api/v1/devices")
        assert response.status_code == 200, response.text
        assert response.json()["items"] == []
        # An admin may create API keys: the role printed is really admin.
        created = client.post("/api/v1/api-keys", json={"name": "ci", "role": "viewer"})
        assert created.status_code == 201, created.text
    wrong = key[:-1] + ("B" if key.endswith("A") else "A")
    with server.client(wrong) as client:
        assert client.get("/api/v1/devices").status_code == 401

    assert "keyco" in ok("tenant", "list", env=hub_env)


def test_tenant_create_twice_is_refused(hub_env: dict[str, str]) -> None:
    ok("tenant", "create", "twice", env=hub_env)
    printed = fails("tenant", "create", "twice", env=hub_env)
    assert "twice" in printed
    assert "already exists" in printed


def test_type_and_device_create_then_list(hub_env: dict[str, str], server: Server) -> None:
    key = new_tenant(hub_env, "meters")
    printed = ok(
        "type",
        "create",
        "meter",
        "--key",
        "energy_kwh:number:kWh",
        "--interval",
        "60",
        "-t",
        "meters",
        env=hub_env,
    )
    assert "meter" in printed

    device_id, token = create_device(hub_env, "meters", "meter", "m-001")
    assert device_id
    assert token.startswith("m2d_")

    listed = ok("device", "list", "-t", "meters", env=hub_env)
    row = next((line for line in listed.splitlines() if device_id in line), None)
    assert row is not None, listed
    assert "m-001" in row
    assert "meter" in row
    assert "never_seen" in row

    with server.client(key) as client:
        assert post_reading(client, device_id, token).status_code == 200
        latest = client.get(f"/api/v1/devices/{device_id}/latest")
        assert latest.status_code == 200, latest.text
        assert latest.json()["values"]["energy_kwh"]["value"] == 12.5
        # The type's declaration is enforced: energy_kwh is a number.
        refused = client.post(
            f"/api/v1/devices/{device_id}/telemetry",
            json={"energy_kwh": "lots"},
            headers={"Authorization": f"Bearer {token}"},
        )
        assert refused.status_code == 422
        assert refused.json()["error"]["field"] == "values.energy_kwh"

    listed = ok("device", "list", "-t", "meters", env=hub_env)
    row = next(line for line in listed.splitlines() if device_id in line)
    assert "online" in row


def test_type_list_shows_keys_with_units(hub_env: dict[str, str]) -> None:
    new_tenant(hub_env, "units")
    for name, key in [
        ("thermo", "temperature:number:°C"),
        ("meter", "energy_kwh:number:kWh"),
        ("contact", "door:bool"),
    ]:
        ok("type", "create", name, "--key", key, "--interval", "300", "-t", "units", env=hub_env)
    ok("type", "create", "locked", "--key", "level", "--strict", "-t", "units", env=hub_env)

    listed = ok("type", "list", "-t", "units", env=hub_env)
    rows = {line.split()[1]: line for line in listed.splitlines() if line.startswith("│")}
    assert set(rows) == {"thermo", "meter", "contact", "locked"}, listed
    assert "temperature [°C]" in rows["thermo"]
    assert "energy_kwh [kWh]" in rows["meter"], f"the unit is missing:\n{listed}"
    assert "door" in rows["contact"]
    assert "300" in rows["contact"]
    assert " no " in rows["contact"]
    assert " yes " in rows["locked"]  # strict


def test_device_create_with_id_and_labels(hub_env: dict[str, str], server: Server) -> None:
    key = new_tenant(hub_env, "labelled", "sensor")
    printed = ok(
        "device",
        "create",
        "--type",
        "sensor",
        "--name",
        "s-1",
        "--id",
        "labelled-s-1",
        "--label",
        "site=north",
        "--label",
        "floor=2",
        "-t",
        "labelled",
        env=hub_env,
    )
    assert search(DEVICE_ID_LINE, printed) == "labelled-s-1"
    with server.client(key) as client:
        device = client.get("/api/v1/devices/labelled-s-1")
        assert device.status_code == 200, device.text
        assert device.json()["labels"] == {"site": "north", "floor": "2"}


@pytest.mark.slow
def test_rotate_token_gives_a_new_token_and_the_server_refuses_the_old(
    hub_env: dict[str, str], server: Server
) -> None:
    new_tenant(hub_env, "rotate", "sensor")
    used_id, used_old = create_device(hub_env, "rotate", "sensor", "used")
    idle_id, idle_old = create_device(hub_env, "rotate", "sensor", "idle")
    with server.client() as client:
        assert post_reading(client, used_id, used_old).status_code == 200

        printed = ok("device", "rotate-token", used_id, "-t", "rotate", env=hub_env)
        used_new = search(TOKEN_LINE, printed)
        idle_new = search(
            TOKEN_LINE, ok("device", "rotate-token", idle_id, "-t", "rotate", env=hub_env)
        )
        assert used_new != used_old
        assert idle_new != idle_old

        # New tokens work at once; a token the server never saw is refused at once.
        assert post_reading(client, used_id, used_new).status_code == 200
        assert post_reading(client, idle_id, idle_new).status_code == 200
        assert post_reading(client, idle_id, idle_old).status_code == 401

        # A token the server verified recently may be trusted for the cache time.
        deadline = time.monotonic() + AUTH_CACHE_S + 5
        while (status := post_reading(client, used_id, used_old).status_code) == 200:
            assert time.monotonic() < deadline, (
                f"the old token still works {AUTH_CACHE_S + 5:.0f} s after rotate-token"
            )
            time.sleep(0.25)  # poll interval, bounded by the deadline above
        assert status == 401


# -- import ------------------------------------------------------------------------------


def write_csv(path: Path, header: list[str], rows: list[list[str]]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def test_import_of_thousands_creates_them_all_and_writes_their_tokens(
    hub_env: dict[str, str], server: Server, tmp_path: Path
) -> None:
    key = new_tenant(hub_env, "fleet", "meter", "tracker")
    count = 3000
    rows = [
        [
            f"m-{i:05d}",
            "meter" if i % 3 else "tracker",
            f"fleet-{i:05d}",
            f"site=s{i % 7};floor={i % 3}",
        ]
        for i in range(count)
    ]
    source = write_csv(tmp_path / "devices.csv", ["name", "type", "id", "labels"], rows)
    tokens = tmp_path / "tokens.csv"

    printed = ok(
        "device", "import", str(source), "--tokens", str(tokens), "-t", "fleet", env=hub_env
    )
    assert str(count) in printed

    with tokens.open(newline="") as f:
        written = list(csv.DictReader(f))
    assert [(r["id"], r["name"]) for r in written] == [(r[2], r[0]) for r in rows]
    assert all(r["token"].startswith("m2d_") for r in written)
    assert len({r["token"] for r in written}) == count
    assert tokens.stat().st_mode & 0o077 == 0, "the tokens file is readable by others"

    with server.client(key) as client:
        devices = {d["id"]: d for d in devices_of(client)}
        assert len(devices) == count
        assert devices["fleet-00004"]["type"] == "meter"
        assert devices["fleet-00003"]["type"] == "tracker"
        assert devices["fleet-00004"]["labels"] == {"site": "s4", "floor": "1"}
        for row in (written[0], written[count // 2], written[-1]):
            assert post_reading(client, row["id"], row["token"]).status_code == 200


def test_import_with_bad_rows_reports_each_and_creates_none(
    hub_env: dict[str, str], server: Server, tmp_path: Path
) -> None:
    key = new_tenant(hub_env, "careful", "meter")
    create_device(hub_env, "careful", "meter", "existing")
    source = write_csv(
        tmp_path / "devices.csv",
        ["name", "type", "id", "labels"],
        [
            ["good-1", "meter", "", "site=a"],  # row 2: fine
            ["good-2", "boiler", "", ""],  # row 3: unknown type
            ["good-1", "meter", "", ""],  # row 4: name twice in the file
            ["existing", "meter", "", ""],  # row 5: name of an existing device
            ["good-3", "meter", "bad id!", ""],  # row 6: id with a space and '!'
            ["good-4", "meter", "", "floor"],  # row 7: label without '='
            ["", "meter", "", ""],  # row 8: no name
            ["good-5", "meter", "", "site=b"],  # row 9: fine
        ],
    )
    result = run_m2mhub("device", "import", str(source), "-t", "careful", env=hub_env, cwd=tmp_path)
    printed = result.stdout + result.stderr
    assert result.returncode != 0, printed
    assert "Traceback" not in printed
    for row, field in [
        (3, "type"),
        (4, "name"),
        (5, "name"),
        (6, "id"),
        (7, "labels"),
        (8, "name"),
    ]:
        assert f"row {row}, {field}:" in printed, f"row {row} ({field}) not reported:\n{printed}"
    for row in (2, 9):
        assert f"row {row}," not in printed
    assert "boiler" in printed

    assert not (tmp_path / "device-tokens.csv").exists()
    with server.client(key) as client:
        assert [d["name"] for d in devices_of(client)] == ["existing"]


def test_import_reports_a_taken_device_id_by_row(
    hub_env: dict[str, str], server: Server, tmp_path: Path
) -> None:
    key = new_tenant(hub_env, "ids", "meter")
    ok(
        "device",
        "create",
        "--type",
        "meter",
        "--name",
        "first",
        "--id",
        "ids-taken",
        "-t",
        "ids",
        env=hub_env,
    )
    source = write_csv(
        tmp_path / "devices.csv",
        ["name", "type", "id"],
        [["second", "meter", "ids-free"], ["third", "meter", "ids-taken"]],
    )
    printed = fails("device", "import", str(source), "-t", "ids", env=hub_env, cwd=tmp_path)
    assert "row 3, id:" in printed
    with server.client(key) as client:
        assert [d["name"] for d in devices_of(client)] == ["first"]


def test_import_without_the_name_column_is_refused(hub_env: dict[str, str], tmp_path: Path) -> None:
    new_tenant(hub_env, "headers", "meter")
    source = write_csv(tmp_path / "devices.csv", ["device", "type"], [["a", "meter"]])
    printed = fails("device", "import", str(source), "-t", "headers", env=hub_env, cwd=tmp_path)
    assert "row 1, name:" in printed


def test_import_that_cannot_write_its_tokens_file_loses_no_tokens(
    hub_env: dict[str, str], server: Server, tmp_path: Path
) -> None:
    """Only the token hashes are stored: devices whose tokens were never written are lost."""
    key = new_tenant(hub_env, "tokenless", "meter")
    source = write_csv(tmp_path / "devices.csv", ["name", "type"], [["a", "meter"], ["b", "meter"]])
    result = run_m2mhub(
        "device",
        "import",
        str(source),
        "--tokens",
        str(tmp_path / "no-such-dir" / "tokens.csv"),
        "-t",
        "tokenless",
        env=hub_env,
    )
    printed = result.stdout + result.stderr
    with server.client(key) as client:
        created = [d["name"] for d in devices_of(client)]
    assert created == [], f"devices {created} were created but their tokens were lost:\n{printed}"
    assert result.returncode != 0, printed
    assert "Traceback" not in printed
    assert "tokens.csv" in printed


# -- commands --------------------------------------------------------------------------


def test_command_send_reaches_an_mqtt_device_and_prints_its_result(
    hub_env: dict[str, str], server: Server
) -> None:
    new_tenant(hub_env, "plant", "pump")
    device_id, token = create_device(hub_env, "plant", "pump", "pump-1")
    port = int(hub_env["M2MHUB_MQTT_PORT"])
    received: list[dict[str, Any]] = []
    client = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id=device_id)
    client.username_pw_set(device_id, token)

    def answer(client: paho.Client, userdata: object, message: paho.MQTTMessage) -> None:
        command = json.loads(message.payload)
        received.append(command)
        result = {"status": "succeeded", "result": {"speed": command["params"]["speed"]}}
        client.publish(f"{message.topic}/result", json.dumps(result), qos=1)

    subscribed = threading.Event()
    client.on_message = answer
    client.on_subscribe = lambda *args: subscribed.set()

    def on_connect(client: paho.Client, *args: object) -> None:
        client.subscribe(f"m2m/{device_id}/commands/+", qos=1)
        client.publish(f"m2m/{device_id}/status", "online", qos=1, retain=True)  # birth

    client.on_connect = on_connect
    client.connect("127.0.0.1", port)
    client.loop_start()
    try:
        assert subscribed.wait(10), "the device could not subscribe to its commands"
        printed = ok(
            "command",
            "send",
            "set_speed",
            "--device",
            device_id,
            "--params",
            '{"speed": 40}',
            "--wait",
            "20",
            "-t",
            "plant",
            env=hub_env,
        )
    finally:
        client.loop_stop()
        client.disconnect()
    assert received and received[0]["method"] == "set_speed"
    row = next(line for line in printed.splitlines() if device_id in line)
    assert "succeeded" in row and '{"speed": 40}' in row
    listed = ok("command", "list", device_id, "-t", "plant", env=hub_env)
    assert "set_speed" in listed and "succeeded" in listed


def test_a_command_for_an_http_device_waits_for_its_poll(
    hub_env: dict[str, str], server: Server
) -> None:
    new_tenant(hub_env, "quiet", "valve")
    device_id, token = create_device(hub_env, "quiet", "valve", "valve-1")
    result = run_m2mhub(
        "command", "send", "open", "--device", device_id, "--wait", "1", "-t", "quiet", env=hub_env
    )
    # Not answered within --wait: exit 1. The device never connected over MQTT, so the
    # server (which runs an MQTT broker) keeps the command for the device's HTTP poll.
    assert result.returncode == 1, result.stdout + result.stderr
    assert "queued" in result.stdout
    with server.client(token) as device:
        taken = device.get(f"/api/v1/devices/{device_id}/commands/next", params={"wait": 5})
    assert [c["method"] for c in taken.json()] == ["open"]


# -- errors name the field ---------------------------------------------------------------


@pytest.fixture(scope="module")
def errors_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """A data directory with the default tenant and a device type ``meter``."""
    env = m2mhub_env(tmp_path_factory.mktemp("errors"))
    new_tenant(env, "default", "meter")
    return env


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["device", "list", "--tenant", "nope"], ["tenant 'nope' not found", "tenant create"]),
        (["type", "create", "t", "-t", "nope"], ["tenant 'nope' not found"]),
        (["device", "create", "--type", "boiler", "--name", "d"], ["device type 'boiler'"]),
        (["type", "create", "t", "--key", "energy:numbr"], ["--key", "number, bool or string"]),
        (["type", "create", "t", "--key", "bad key"], ["key", "'bad key'"]),
        (["type", "create", "t", "--interval", "0"], ["interval"]),
        (["type", "create", "meter"], ["meter", "already exists"]),
        (["device", "create", "--type", "meter", "--name", "d", "--id", "a/b"], ["id", "'a/b'"]),
        (["device", "create", "--type", "meter", "--name", "d", "--label", "floor"], ["label"]),
        (["device", "rotate-token", "no-such-device"], ["device 'no-such-device' not found"]),
        (["device", "import", "no-such.csv"], ["no-such.csv", "does not exist"]),
        (["tenant", "create", "Bad_Slug"], ["slug", "'Bad_Slug'"]),
        (["apikey", "create", "--role", "boss"], ["--role", "boss"]),
        (["command", "send", "reboot", "--device", "ghost"], ["device 'ghost' not found"]),
        (["command", "send", "reboot"], ["--device or --group"]),
        (["command", "send", "reboot", "--group", "nope"], ["group 'nope' not found"]),
        (["command", "send", "reboot", "--device", "d", "--params", "{x"], ["params", "JSON"]),
        (["command", "send", "reboot", "--device", "d", "--params", "[1]"], ["params", "object"]),
    ],
    ids=[
        "unknown-tenant",
        "unknown-tenant-type-create",
        "unknown-type",
        "bad-key-type",
        "bad-key-name",
        "bad-interval",
        "type-exists",
        "bad-device-id",
        "bad-label",
        "unknown-device",
        "missing-import-file",
        "bad-slug",
        "bad-role",
        "command-unknown-device",
        "command-no-target",
        "command-unknown-group",
        "command-bad-params",
        "command-params-not-object",
    ],
)
def test_errors_name_the_field(
    errors_env: dict[str, str], args: list[str], expected: list[str]
) -> None:
    printed = fails(*args, env=errors_env)
    for text in expected:
        assert text in printed, f"{text!r} not in:\n{printed}"


def test_failed_device_create_creates_nothing(errors_env: dict[str, str]) -> None:
    fails("device", "create", "--type", "meter", "--name", "half", "--id", "a b", env=errors_env)
    assert "half" not in ok("device", "list", env=errors_env)


# -- PostgreSQL ----------------------------------------------------------------------------


@pytest.mark.postgres
def test_management_commands_on_postgres(tmp_path: Path) -> None:
    require_postgres()
    schema = f"cli_{uuid.uuid4().hex[:12]}"
    url = f"{POSTGRES_URL}{'&' if '?' in POSTGRES_URL else '?'}schema={schema}"
    env = m2mhub_env(tmp_path, M2MHUB_DATABASE_URL=url)
    try:
        key = new_tenant(env, "pg")
        assert API_KEY.fullmatch(key)
        ok("type", "create", "meter", "--key", "energy_kwh:number:kWh", "-t", "pg", env=env)
        device_id, _ = create_device(env, "pg", "meter", "m-001")
        source = write_csv(
            tmp_path / "d.csv", ["name", "type"], [[f"x-{i}", "meter"] for i in range(50)]
        )
        ok("device", "import", str(source), "-t", "pg", env=env, cwd=tmp_path)
        listed = ok("device", "list", "-t", "pg", env=env)
        assert device_id in listed
        assert "x-49" in listed
        assert not (tmp_path / "m2mhub.db").exists(), "the CLI ignored M2MHUB_DATABASE_URL"
    finally:
        with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
