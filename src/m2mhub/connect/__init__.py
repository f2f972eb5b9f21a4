"""Transports: how devices reach m2mhub (HTTP lives in api/ingest.py, MQTT here)."""
