"""Settings: environment variables ``M2MHUB_*`` over an optional TOML file.

The TOML file is named by ``M2MHUB_CONFIG`` (default ``m2mhub.toml`` in the
working directory, if present). Keys are the field names below, lower case.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any, Final

from pydantic import Field, ValidationError, field_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from m2mhub.core.errors import M2MHubError


class Settings(BaseSettings):
    """Everything an operator can set, with its default."""

    model_config = SettingsConfigDict(env_prefix="M2MHUB_", extra="ignore")

    data_dir: Path = Field(Path("data"), description="Where the SQLite file and state live.")
    database_url: str = Field(
        "",
        description="sqlite:///path/to/file.db or postgresql://user@host:5432/db; "
        "empty means a SQLite file in data_dir.",
    )
    host: str = "127.0.0.1"
    port: int = Field(8080, ge=1, le=65535)
    roles: str = Field(
        "all",
        description="Comma-separated roles this process runs: api, ingest, scheduler, rules "
        "or all.",
    )
    max_body_bytes: int = Field(1_048_576, description="Largest accepted request body.")
    max_batch_readings: int = Field(10_000, description="Most readings in one posted batch.")
    max_string_length: int = Field(1024, description="Longest accepted string value.")
    future_tolerance_s: int = Field(
        300, description="How far in the future a reading's timestamp may be (clock skew)."
    )
    rollup_interval_s: float = Field(5.0, description="How often pending rollups are computed.")
    retention_interval_s: float = Field(3600.0, description="How often retention runs.")
    rollup_1m_retention_days: int = Field(90, description="Days of 1-minute rollups kept.")
    rollup_1h_retention_days: int = Field(0, description="Days of 1-hour rollups kept; 0 = all.")
    offline_factor: float = Field(
        2.0, description="A device is offline after this many report intervals of silence."
    )
    presence_interval_s: float = Field(
        2.0,
        gt=0,
        description="How often devices are checked for going silent (offline) or coming back.",
    )
    mqtt_enabled: bool = Field(True, description="Run the MQTT transport (ingest role).")
    mqtt_url: str = Field(
        "",
        description="External broker, e.g. mqtt://127.0.0.1:1883 or mqtts://host:8883; "
        "empty starts the embedded broker.",
    )
    mqtt_host: str = Field("127.0.0.1", description="Address the embedded broker listens on.")
    mqtt_port: int = Field(1883, ge=1, le=65535, description="Port the embedded broker listens on.")
    mqtt_username: str = Field("", description="The platform's user at an external broker.")
    mqtt_password: str = Field("", description="The platform's password at an external broker.")
    mqtt_ca_file: str = Field("", description="CA certificate to verify an mqtts:// broker.")
    mqtt_dynsec: bool = Field(
        True,
        description="With an external Mosquitto, keep device accounts and ACLs in its "
        "dynamic-security plugin.",
    )
    mqtt_shared_group: str = Field(
        "",
        description="With several ingest processes on one external broker: the group of their "
        "shared subscription ($share/<group>/...). Empty: one process, plain subscriptions.",
    )
    mqtt_client_id: str = Field(
        "",
        description="Client id of this process's subscriber (stable across restarts, unique "
        "per process); empty means m2mhub-<hostname>.",
    )
    mqtt_max_payload_bytes: int = Field(262_144, description="Largest accepted MQTT payload.")
    mqtt_receive_maximum: int = Field(
        30_000,
        ge=1,
        le=65_535,
        description="QoS 1 messages an external MQTT 5 broker may send the subscriber before "
        "it acknowledges them (Receive Maximum): at most this many wait in memory.",
    )
    mqtt_device_rate: float = Field(
        50.0,
        gt=0,
        description="Messages per second one device may publish (a burst of 5x is allowed).",
    )
    # GPS tracker protocols (ingest role): each on its own port, devices known by their IMEI.
    trackers: str = Field(
        "",
        description="Tracker protocols to serve as name:port pairs, e.g. "
        "'teltonika:5027,gt06:5023' (Teltonika also on UDP on its port; port 0 picks a free "
        "one); empty serves none.",
    )
    tracker_host: str = Field(
        "127.0.0.1", description="Address the tracker servers listen on (0.0.0.0: all)."
    )
    tracker_idle_timeout_s: float = Field(
        600.0, gt=0, description="A tracker connection with no whole frame for this long is cut."
    )
    tracker_max_connections: int = Field(
        10_000, ge=1, description="Open connections one tracker protocol accepts."
    )
    tracker_max_speed_kmh: float = Field(
        300.0, gt=0, description="A fix implying a faster move since the last one is refused."
    )
    # Webhooks and notifications (the delivery worker runs with the scheduler role).
    webhook_timeout_s: float = Field(
        10.0, gt=0, description="How long one webhook or notification attempt may take."
    )
    delivery_max_attempts: int = Field(
        8, ge=1, description="Attempts of a webhook or notification before it is a dead letter."
    )
    delivery_backoff_s: float = Field(
        5.0, gt=0, description="Wait after the first failed attempt; doubles after each one."
    )
    delivery_backoff_max_s: float = Field(
        900.0, gt=0, description="Longest wait between attempts (a Retry-After may be longer)."
    )
    delivery_concurrency: int = Field(
        16, ge=1, description="Webhooks and notifications one process sends at the same time."
    )
    delivery_poll_s: float = Field(
        1.0, gt=0, description="How often the outbox is checked for work from other processes."
    )
    delivery_lease_s: float = Field(
        120.0,
        gt=0,
        description="A claimed delivery whose process died is tried again after this long; "
        "keep it well above webhook_timeout_s.",
    )
    delivery_drain_s: float = Field(
        5.0, ge=0, description="At shutdown, how long attempts in flight may take to finish."
    )
    delivery_keep_days: float = Field(
        7.0,
        ge=0,
        description="Days delivered webhooks and notifications are kept (dead letters stay).",
    )
    # Rules and alarms (the engine runs with the rules role).
    rules_file: str = Field(
        "", description="A YAML rules file applied (created or replaced by name) at start."
    )
    rules_tick_s: float = Field(
        1.0, gt=0, description="How often durations, count windows and silence are checked."
    )
    rules_reload_s: float = Field(
        5.0, gt=0, description="How often rules changed by another process are picked up."
    )
    rules_flush_s: float = Field(
        5.0,
        gt=0,
        description="How often the newest reading time of states that changed in nothing "
        "else is written (a crash loses up to this much of it).",
    )
    rules_trace_size: int = Field(
        100, ge=1, description="Recent evaluations each rule keeps for /rules/{name}/trace."
    )
    # Web console.
    session_secret: str = Field(
        "",
        description="Key that signs console sign-ins; empty: a random key kept in "
        "data_dir/session-secret. Give every process behind one address the same key.",
    )
    session_max_age_s: int = Field(28_800, ge=60, description="How long a console sign-in lasts.")
    stream_heartbeat_s: float = Field(
        15.0, gt=0, description="Seconds between keep-alive comments on event streams."
    )
    console_tile_url: str = Field(
        "",
        pattern=r"^$|^https?://[^/\s'\"]+/[^\s'\"]*\{z\}[^\s'\"]*$",
        description="Map tiles for the console's map, as {z}/{x}/{y} URL of a tile server; "
        "empty: no tiles (points, tracks and geofences on a plain background).",
    )
    console_tile_attribution: str = Field(
        "", max_length=300, description="Text shown on the map for the tiles' source."
    )
    log_level: str = "INFO"

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        toml_path = Path(os.environ.get("M2MHUB_CONFIG", "m2mhub.toml"))
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        if toml_path.is_file():
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=toml_path))
        return tuple(sources)

    def resolved_database_url(self) -> str:
        """The database URL, defaulting to a SQLite file in the data directory."""
        if self.database_url:
            return self.database_url
        return f"sqlite:///{self.data_dir / 'm2mhub.db'}"

    @field_validator("trackers")
    @classmethod
    def _tracker_pairs(cls, value: str) -> str:
        _tracker_ports(value)
        return value

    def tracker_ports(self) -> dict[str, int]:
        """``trackers`` parsed: protocol name -> port."""
        return _tracker_ports(self.trackers)

    def role_set(self) -> set[str]:
        """The roles this process runs."""
        roles = {r.strip() for r in self.roles.split(",") if r.strip()}
        return {"api", "ingest", "scheduler", "rules"} if "all" in roles else roles


def _tracker_ports(text: str) -> dict[str, int]:
    ports: dict[str, int] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        name, _, port = item.partition(":")
        if not name.strip() or not port.strip().isdigit() or not 0 <= int(port) < 65536:
            raise ValueError(f"{item!r} is not name:port (e.g. teltonika:5027)")
        ports[name.strip().lower()] = int(port)
    return ports


ROLES: Final = frozenset({"all", "api", "ingest", "scheduler", "rules"})


def load_settings(**overrides: Any) -> Settings:
    """Settings from the environment and TOML file, with explicit overrides on top.

    Mistakes are reported as :class:`M2MHubError` naming the setting: a named
    config file that does not exist, a TOML key that is not a setting, a value
    of the wrong type, an unknown role.
    """
    named = os.environ.get("M2MHUB_CONFIG")
    path = Path(named or "m2mhub.toml")
    if named and not path.is_file():
        raise M2MHubError(f"M2MHUB_CONFIG: {path} does not exist", field="config")
    if path.is_file():
        try:
            data = tomllib.loads(path.read_text())
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise M2MHubError(f"{path}: not valid TOML: {exc}", field="config") from None
        unknown = sorted(set(data) - set(Settings.model_fields))
        if unknown:
            raise M2MHubError(
                f"{path}: {unknown[0]!r} is not a setting (see docs/configuration.md)",
                field=unknown[0],
            )
    try:
        settings = Settings(**overrides)
    except ValidationError as exc:
        first = exc.errors()[0]
        name = str(first["loc"][0]) if first["loc"] else "settings"
        raise M2MHubError(f"{name} (M2MHUB_{name.upper()}): {first['msg']}", field=name) from None
    unknown_roles = settings.role_set() - ROLES
    if unknown_roles:
        raise M2MHubError(
            f"roles (M2MHUB_ROLES): unknown role {sorted(unknown_roles)[0]!r}; use api, ingest, "
            "scheduler, rules or all",
            field="roles",
        )
    return settings
