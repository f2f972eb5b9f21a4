"""Settings: environment over TOML, and mistakes named plainly."""

from __future__ import annotations

from pathlib import Path

import pytest

from m2mhub.config import load_settings
from m2mhub.connect.mqtt.transport import BrokerAddress
from m2mhub.core.errors import M2MHubError


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in ("M2MHUB_PORT", "M2MHUB_ROLES", "M2MHUB_CONFIG", "M2MHUB_DATA_DIR"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)


def test_environment_wins_over_toml(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    (tmp_path / "m2mhub.toml").write_text('port = 9000\nhost = "0.0.0.0"\n')
    monkeypatch.setenv("M2MHUB_PORT", "9100")
    settings = load_settings()
    assert (settings.host, settings.port) == ("0.0.0.0", 9100)
    assert settings.resolved_database_url() == "sqlite:///data/m2mhub.db"


@pytest.mark.parametrize(
    ("toml", "env", "field"),
    [
        ("prot = 9000\n", {}, "prot"),
        ("port = \n", {}, "config"),
        ("", {"M2MHUB_PORT": "abc"}, "port"),
        ("", {"M2MHUB_ROLES": "api,bogus"}, "roles"),
        ("", {"M2MHUB_CONFIG": "missing.toml"}, "config"),
    ],
)
def test_mistakes_name_the_setting(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, toml: str, env: dict[str, str], field: str
) -> None:
    if toml:
        (tmp_path / "m2mhub.toml").write_text(toml)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(M2MHubError) as caught:
        load_settings()
    assert caught.value.field == field


def test_roles() -> None:
    assert load_settings(roles="all").role_set() == {"api", "ingest", "scheduler", "rules"}
    assert load_settings(roles="scheduler").role_set() == {"scheduler"}


@pytest.mark.parametrize(
    ("env", "field"),
    [
        ({"M2MHUB_PORT": "-5"}, "port"),
        ({"M2MHUB_MQTT_PORT": "70000"}, "mqtt_port"),
        ({"M2MHUB_MQTT_DEVICE_RATE": "0"}, "mqtt_device_rate"),
    ],
)
def test_out_of_range_values_are_named(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], field: str
) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(M2MHubError) as caught:
        load_settings()
    assert caught.value.field == field


def test_a_missing_ca_file_is_named() -> None:
    settings = load_settings(mqtt_url="mqtts://127.0.0.1:8883", mqtt_ca_file="/nonexistent.pem")
    with pytest.raises(M2MHubError) as caught:
        BrokerAddress.from_settings(settings)
    assert caught.value.field == "mqtt_ca_file"
