"""Saving many rule states at once, each conditionally on its version.

The batch counterpart of :meth:`Store.save_rule_state`, for the states the engine keeps
in memory between ticks (a newer ``last_ts`` and nothing else): one transaction per
batch instead of one per state. Each row is still written only over the version it was
read at; what is stored afterwards is read back in the same transaction, so the caller
knows, row by row, whether its write won or what another process saved instead.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

from m2mhub.core.timeutil import now_ms
from m2mhub.store import Store

#: Rows per transaction (and per read-back statement: two parameters a row).
BATCH: Final = 500

Key = tuple[int, int]  # (rule_id, device_pk)


async def save_states(
    store: Store, rows: Sequence[tuple[int, int, str, int]]
) -> dict[Key, tuple[str, int] | None]:
    """Save each ``(rule_id, device_pk, state, version)`` as ``version + 1`` if the stored
    version is still ``version`` (0: none saved yet), in one transaction.

    Returns what is stored for each row afterwards, ``(state, version)``, or None when the
    row is gone (its rule was deleted). A row was written when that is ``(state,
    version + 1)``; anything else is what another process saved first.
    """
    if not rows:
        return {}
    now = now_ms()
    updates = [
        (text, now, rule, device, version) for rule, device, text, version in rows if version
    ]
    inserts = [(rule, device, text, now) for rule, device, text, version in rows if not version]
    marks = ", ".join("(?, ?)" for _ in rows)
    keys = [value for rule, device, _, _ in rows for value in (rule, device)]
    async with store.transaction() as tx:
        if updates:
            await tx.executemany(
                "UPDATE rule_state SET state = ?, updated_ms = ?, version = version + 1 "
                "WHERE rule_id = ? AND device_pk = ? AND version = ?",
                updates,
            )
        if inserts:
            await tx.executemany(
                "INSERT INTO rule_state (rule_id, device_pk, state, updated_ms, version) "
                "VALUES (?, ?, ?, ?, 1) ON CONFLICT (rule_id, device_pk) DO NOTHING",
                inserts,
            )
        # Rows this transaction wrote stay locked until it commits: what it reads is final.
        # (A join, not ``(rule_id, device_pk) IN (VALUES ...)``: SQLite scans the table
        # for that; a VALUES list's columns are column1, column2 on both backends.)
        found = await tx.fetchall(
            "SELECT s.rule_id, s.device_pk, s.state, s.version "
            f"FROM (VALUES {marks}) AS k JOIN rule_state AS s "
            "ON s.rule_id = k.column1 AND s.device_pk = k.column2",
            keys,
        )
    stored: dict[Key, tuple[str, int] | None] = {(r[0], r[1]): None for r in rows}
    for rule_id, device_pk, text, version in found:
        stored[(int(rule_id), int(device_pk))] = (text, int(version))
    return stored


__all__ = ["BATCH", "save_states"]
