"""The REST API under /api/v1, with OpenAPI at /openapi.json and docs at /docs."""

from m2mhub.api.app import create_app

__all__ = ["create_app"]
