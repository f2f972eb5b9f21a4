"""Simulated devices that talk to m2mhub over its public device protocols."""

from m2mhub.sim.http_fleet import HttpFleet, SimDevice
from m2mhub.sim.models import DeviceModel, EnvironmentSensor, Meter, TankLevel

__all__ = ["DeviceModel", "EnvironmentSensor", "HttpFleet", "Meter", "SimDevice", "TankLevel"]
