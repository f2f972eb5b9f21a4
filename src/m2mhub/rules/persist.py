"""Saving many rule states at once, each conditionally on its version.

The batch counterpart of :meth:`Store.save_rule_state`, for the states the engine keeps
in memory between flushes (a newer ``last_ts`` and nothing else): one transaction per
batch instead of one per state. Each row is still written only over the version it was
read at. When the statements' row counts say that a row was not written, what is stored
is read back in the same transaction, so the caller knows, row by row, whether its write
won or what another process saved instead.
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
    updates = [value for row in rows if row[3] for value in row]
    inserts = [value for r in rows if not r[3] for value in (r[0], r[1], r[2], now)]
    written = 0
    async with store.transaction() as tx:
        # One statement for the whole batch, which also says how many rows it wrote: when
        # that is every row (nearly always), nothing needs to be read back.
        if updates:
            marks = ", ".join(["(?, ?, ?, ?)"] * (len(updates) // 4))
            written += await tx.execute(
                "UPDATE rule_state AS s SET state = k.column3, updated_ms = ?, "
                f"version = s.version + 1 FROM (VALUES {marks}) AS k "
                "WHERE s.rule_id = k.column1 AND s.device_pk = k.column2 "
                "AND s.version = k.column4",
                [now, *updates],
            )
        if inserts:
            marks = ", ".join(["(?, ?, ?, ?, 1)"] * (len(inserts) // 4))
            written += await tx.execute(
                "INSERT INTO rule_state (rule_id, device_pk, state, updated_ms, version) "
                f"VALUES {marks} ON CONFLICT (rule_id, device_pk) DO NOTHING",
                inserts,
            )
        if written == len(rows):
            return {(r[0], r[1]): (r[2], r[3] + 1) for r in rows}
        # Rows this transaction wrote stay locked until it commits: what it reads is final.
        # (A join, not ``(rule_id, device_pk) IN (VALUES ...)``: SQLite scans the table
        # for that; a VALUES list's columns are column1, column2 on both backends.)
        marks = ", ".join(["(?, ?)"] * len(rows))
        found = await tx.fetchall(
            "SELECT s.rule_id, s.device_pk, s.state, s.version "
            f"FROM (VALUES {marks}) AS k JOIN rule_state AS s "
            "ON s.rule_id = k.column1 AND s.device_pk = k.column2",
            [value for rule, device, _, _ in rows for value in (rule, device)],
        )
    stored: dict[Key, tuple[str, int] | None] = {(r[0], r[1]): None for r in rows}
    for rule_id, device_pk, text, version in found:
        stored[(int(rule_id), int(device_pk))] = (text, int(version))
    return stored


__all__ = ["BATCH", "save_states"]
