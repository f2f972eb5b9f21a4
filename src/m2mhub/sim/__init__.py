"""Simulated devices: physical models of a fleet, its YAML description, device time.

Each model family has its module (``meters``, ``vehicles``, ``trackers``,
``machines``, ``wearables``, ``stock``, ``tank``); ``fleet`` reads the fleet
description and builds the models; ``clock`` runs device time faster than the
wall clock and backfills history; ``runner`` runs a fleet against m2mhub over MQTT
through the device SDK.
"""

from m2mhub.sim.base import AnyModel, SimModel, device_rng
from m2mhub.sim.clock import SimClock, backfill, backfill_fleet
from m2mhub.sim.fleet import (
    MODELS,
    Fleet,
    FleetAsset,
    FleetDevice,
    FleetError,
    FleetType,
    build_models,
    default_fleet_text,
    load_fleet,
    parse_fleet,
)
from m2mhub.sim.machines import Machine, MachineParams
from m2mhub.sim.meters import ElectricityMeter, MeterParams
from m2mhub.sim.runner import FleetRunner, LiveClock
from m2mhub.sim.stock import StockBin, StockParams
from m2mhub.sim.tank import Pump, PumpParams, Tank, TankParams
from m2mhub.sim.trackers import AssetTracker, TrackerParams
from m2mhub.sim.vehicles import Vehicle, VehicleParams
from m2mhub.sim.wearables import Wearable, WearableParams, news2_score

__all__ = [
    "MODELS",
    "AnyModel",
    "AssetTracker",
    "ElectricityMeter",
    "Fleet",
    "FleetAsset",
    "FleetDevice",
    "FleetError",
    "FleetRunner",
    "FleetType",
    "LiveClock",
    "Machine",
    "MachineParams",
    "MeterParams",
    "Pump",
    "PumpParams",
    "SimClock",
    "SimModel",
    "StockBin",
    "StockParams",
    "Tank",
    "TankParams",
    "TrackerParams",
    "Vehicle",
    "VehicleParams",
    "Wearable",
    "WearableParams",
    "backfill",
    "backfill_fleet",
    "build_models",
    "default_fleet_text",
    "device_rng",
    "load_fleet",
    "news2_score",
    "parse_fleet",
]
