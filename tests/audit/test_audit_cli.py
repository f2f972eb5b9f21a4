"""Management commands run from the CLI are in the audit log under the OS user's name."""

from __future__ import annotations

import asyncio
import getpass
from pathlib import Path

from m2mhub.store import SqliteStore
from m2mhub.store.models import AuditEntry
from tests.processes import m2mhub_env, ok


def test_cli_actions_are_audited(tmp_path: Path) -> None:
    env = m2mhub_env(tmp_path)
    ok("tenant", "create", "acme", env=env)
    ok("type", "create", "meter", "--tenant", "acme", env=env)
    ok("device", "create", "--type", "meter", "--name", "m1", "--id", "m1", "-t", "acme", env=env)
    ok("device", "rotate-token", "m1", "-t", "acme", env=env)
    ok("apikey", "create", "--tenant", "acme", "--role", "operator", env=env)

    async def entries() -> list[AuditEntry]:
        async with SqliteStore(tmp_path / "m2mhub.db") as store:
            tenant = await store.get_tenant("acme")
            assert tenant is not None
            return await store.list_audit(tenant.id, start=0, end=2**62)

    found = asyncio.run(entries())
    assert [(e.action, e.target) for e in found] == [
        ("apikey.create", found[0].target),
        ("device.rotate_token", "device:m1"),
        ("device.create", "device:m1"),
    ]
    assert found[0].target.startswith("apikey:") and found[0].details == {"role": "operator"}
    assert {e.actor for e in found} == {f"cli:{getpass.getuser()}"}
