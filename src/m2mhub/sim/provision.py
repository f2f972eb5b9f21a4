"""Devices for the load generator: created through the REST API, or read from a tokens CSV.

Provisioning uses the documented API with an admin key: the device type
(``POST /api/v1/device-types``; one that exists already is used as it is) and
the devices by CSV import (``POST /api/v1/devices/import``, docs/api.md#csv-import),
a thousand at a time. The tokens file has the columns ``id,name,token``, as
``m2mhub device import`` writes it.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Final

import httpx

from m2mhub.sim.loadgen import LoadError, SimDevice
from m2mhub.store.models import KeySpec

#: Devices per import request: well under the import's body limit (16 MiB).
IMPORT_CHUNK: Final = 1000
TIMEOUT_S: Final = 60.0


def read_tokens(path: Path) -> list[SimDevice]:
    """The devices of an ``id,name,token`` CSV file."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except OSError as exc:
        raise LoadError(f"tokens: cannot read {path}: {exc.strerror}", field="tokens") from None
    rows = csv.DictReader(io.StringIO(text))
    if not rows.fieldnames or not {"id", "token"} <= set(rows.fieldnames):
        raise LoadError(
            f"tokens: {path} needs the columns id and token (as m2mhub device import writes)",
            field="tokens",
        )
    devices = []
    for number, row in enumerate(rows, start=2):
        if not row.get("id") or not row.get("token"):
            raise LoadError(f"tokens: {path} row {number}: id or token is empty", field="tokens")
        devices.append(SimDevice(row["id"], row["token"]))
    if not devices:
        raise LoadError(f"tokens: {path} lists no device", field="tokens")
    return devices


def device_ids(prefix: str, count: int) -> list[str]:
    """``sim-00001``, ``sim-00002``, ...: ids and names of generated devices."""
    width = max(5, len(str(count)))
    return [f"{prefix}-{i:0{width}d}" for i in range(1, count + 1)]


async def provision(
    api_url: str,
    key: str,
    *,
    ids: Sequence[str],
    type_name: str,
    keys: Sequence[KeySpec],
    created: Callable[[list[tuple[str, str, str]]], None],
) -> list[SimDevice]:
    """Create the type (unless it exists) and the devices; ``created`` gets each chunk's
    ``(id, name, token)`` rows as soon as they exist, so no token is lost if a later
    chunk fails."""
    headers = {"Authorization": f"Bearer {key}"}
    async with httpx.AsyncClient(base_url=api_url, headers=headers, timeout=TIMEOUT_S) as api:
        declared = [{"key": k.key, "type": k.type.value, "unit": k.unit} for k in keys]
        response = await _call(
            api.post("/api/v1/device-types", json={"name": type_name, "keys": declared})
        )
        if response.status_code not in (201, 409):
            raise _refused("creating the device type", response)
        devices: list[SimDevice] = []
        for start in range(0, len(ids), IMPORT_CHUNK):
            chunk = ids[start : start + IMPORT_CHUNK]
            text = "name,type,id\n" + "".join(f"{d},{type_name},{d}\n" for d in chunk)
            response = await _call(
                api.post(
                    "/api/v1/devices/import",
                    content=text.encode(),
                    headers={"Content-Type": "text/csv"},
                )
            )
            if response.status_code != 201:
                raise _refused(f"importing devices {chunk[0]} to {chunk[-1]}", response)
            rows = [(d["id"], d["name"], d["token"]) for d in response.json()["devices"]]
            created(rows)
            devices += [SimDevice(i, t) for i, _, t in rows]
    return devices


async def _call(request: object) -> httpx.Response:
    try:
        return await request  # type: ignore[misc, no-any-return]
    except httpx.HTTPError as exc:
        raise LoadError(f"api: no answer from the API: {exc}", field="api") from None


def _refused(doing: str, response: httpx.Response) -> LoadError:
    try:
        error = response.json()["error"]
        message = error["message"]
        rows = error.get("rows") or []
        if rows:
            message += f" (first: row {rows[0]['row']}, {rows[0]['field']}: {rows[0]['message']})"
    except (ValueError, KeyError, TypeError, IndexError):
        message = response.text[:200]
    hint = {
        401: "; give an admin key with --key m2k_...",
        403: "; the key needs the admin role",
        422: "; choose another --prefix, or run the existing devices with --tokens FILE",
    }.get(response.status_code, "")
    return LoadError(
        f"provision: the API refused {doing}: {response.status_code} {message}{hint}",
        field="provision",
    )
