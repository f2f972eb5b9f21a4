"""Storage: one ``Store`` interface, a SQLite and a PostgreSQL backend."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

from m2mhub.core.errors import M2MHubError
from m2mhub.store.base import Segment, Store
from m2mhub.store.postgres import PostgresStore
from m2mhub.store.sqlite import SqliteStore

__all__ = ["PostgresStore", "Segment", "SqliteStore", "Store", "open_store"]


def open_store(url: str) -> Store:
    """A store for ``sqlite:///path`` or ``postgresql://...`` (not yet opened).

    ``?schema=name`` on a PostgreSQL URL keeps m2mhub's tables in that schema.
    """
    parts = urlsplit(url)
    query = parse_qs(parts.query)
    if parts.scheme == "sqlite":
        path = url.split("://", 1)[1].split("?", 1)[0]
        path = path[1:] if path.startswith("/") else path
        sync = query.get("synchronous", ["NORMAL"])[0]
        return SqliteStore(path, synchronous=sync)
    if parts.scheme in ("postgresql", "postgres"):
        schema = query.pop("schema", [None])[0]
        rest = "&".join(f"{k}={v[0]}" for k, v in query.items())
        base = parts._replace(query=rest).geturl()
        return PostgresStore(base, schema=schema)
    raise M2MHubError(
        f"database URL {url!r}: use sqlite:///path/to/file.db or postgresql://user@host/db",
        field="database_url",
    )
