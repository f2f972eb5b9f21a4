"""Ingest: parse what devices send, check it, and store it in batches."""

from m2mhub.ingest.payload import Limits, parse_attributes, parse_telemetry
from m2mhub.ingest.pipeline import IngestBatch, Pipeline

__all__ = ["IngestBatch", "Limits", "Pipeline", "parse_attributes", "parse_telemetry"]
