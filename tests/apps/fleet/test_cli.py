"""``m2mhub fleet ...`` on the database a running platform fills."""

from __future__ import annotations

import asyncio
import csv
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from m2mhub.apps.fleet.reports import GPX_NS, route
from m2mhub.cli import app
from tests.apps.fleet.conftest import VAN, send
from tests.apps.fleet.vans import VanDay
from tests.conftest import Api

DAY = VanDay()
RANGE = ["--from", "2026-06-09T22:00Z", "--to", "2026-06-10T22:00Z", "--tenant", "acme"]


@pytest.fixture
def backend() -> str:
    """The CLI runs the queries the API tests run on both backends."""
    return "sqlite"


async def fleet_cli(tmp_path: Path, *args: str) -> Result:
    # In a thread: the command runs its own event loop, as it does from a shell.
    env = {"M2MHUB_DATA_DIR": str(tmp_path), "M2MHUB_CONFIG": ""}
    return await asyncio.to_thread(CliRunner().invoke, app, ["fleet", *args], env=env)


async def test_trips_and_reports(api: Api, tmp_path: Path) -> None:
    await send(api, VAN, DAY.readings)
    listed = await fleet_cli(tmp_path, "trips", VAN, *RANGE)
    assert listed.exit_code == 0, listed.output
    assert listed.output.count("2026-06-10T") == 6  # start and end of three trips
    out = tmp_path / "trips.csv"
    made = await fleet_cli(tmp_path, "report", "trips", "--device", VAN, "-o", str(out), *RANGE)
    assert made.exit_code == 0, made.output
    with out.open(newline="") as f:
        assert len(list(csv.DictReader(f))) == 3
    gpx = tmp_path / "day.gpx"
    made = await fleet_cli(
        tmp_path, "report", "trips", "--device", VAN, "--format", "gpx", "-o", str(gpx), *RANGE
    )
    assert made.exit_code == 0, made.output
    points = ET.parse(gpx).getroot().findall(f".//{{{GPX_NS}}}trkpt")
    # The day's last fix is at local midnight, the end of the range, which is excluded.
    assert len(points) == len(route(DAY.readings[:-1]))
    week = tmp_path / "week.csv"
    made = await fleet_cli(
        tmp_path, "report", "utilization", "--period", "week", "-o", str(week), *RANGE
    )
    assert made.exit_code == 0, made.output
    with week.open(newline="") as f:
        assert [r["period"] for r in csv.DictReader(f)] == ["2026-W24"]


async def test_mistakes_name_the_option(api: Api, tmp_path: Path) -> None:
    wrong = await fleet_cli(
        tmp_path, "report", "events", "--device", VAN, "--format", "kml", "-o", "x", *RANGE
    )
    assert wrong.exit_code == 2 and "format:" in wrong.output
    wrong = await fleet_cli(tmp_path, "enable", "van", "--settings", '{"speed": 1}', "-t", "acme")
    assert wrong.exit_code == 2 and "settings.speed" in wrong.output
    made = await fleet_cli(
        tmp_path, "enable", "van", "--settings", '{"overspeed_kmh": 90}', "-t", "acme"
    )
    assert made.exit_code == 0, made.output
