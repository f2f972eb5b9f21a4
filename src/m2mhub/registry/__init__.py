"""The registry: tenants, credentials, device types, devices, groups, assets."""

from m2mhub.registry.service import DeviceStatus, ImportRejected, Principal, Registry, RowError

__all__ = ["DeviceStatus", "ImportRejected", "Principal", "Registry", "RowError"]
