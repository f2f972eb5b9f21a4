"""Rules in the store: apply a rule file or an API body, read them back."""

from __future__ import annotations

import msgspec

from m2mhub.rules.model import (
    Rule,
    RuleError,
    RuleFile,
    Scope,
    line_of,
    parse_rule,
    parse_rule_file,
)
from m2mhub.store.base import Store
from m2mhub.store.models import Device, StoredRule


def rule_of(stored: StoredRule) -> Rule:
    """The rule model of a stored rule (its ``enabled`` column wins over the definition)."""
    data = msgspec.json.decode(stored.definition)
    data["enabled"] = stored.enabled
    return parse_rule(data)


async def save_rule(store: Store, tenant_id: int, rule: Rule, *, source: str) -> tuple[Rule, bool]:
    """Create or replace ``rule``; True when it is new."""
    definition = msgspec.json.encode(rule.to_data()).decode()
    stored, created = await store.upsert_rule(
        tenant_id, rule.name, definition, enabled=rule.enabled, source=source
    )
    return rule_of(stored), created


async def apply_rule_file(
    store: Store, text: str, *, source: str = "rules file"
) -> tuple[RuleFile, list[tuple[str, bool]]]:
    """Validate a whole file, then create or replace each of its rules in its tenant.

    Nothing is saved when any rule is invalid. Returns (rule name, created) pairs.
    """
    parsed = parse_rule_file(text, source=source)
    tenant = await store.get_tenant(parsed.tenant)
    if tenant is None:
        line = line_of(text, "tenant")
        where = f"{source}:{line}" if line is not None else source
        raise RuleError(f"{where}: tenant {parsed.tenant!r} does not exist", field="tenant")
    applied = []
    for rule in parsed.rules:
        _, created = await save_rule(store, tenant.id, rule, source="file")
        applied.append((rule.name, created))
    return parsed, applied


async def prune_rules(store: Store, tenant_id: int, keep: set[str]) -> list[str]:
    """Delete the tenant's rules whose names are not in ``keep`` (with their state and
    pauses; their alarms stay); returns their names."""
    deleted = []
    for stored in await store.list_rules(tenant_id):
        if stored.name not in keep:
            await store.delete_rule(tenant_id, stored.name)
            deleted.append(stored.name)
    return deleted


async def scope_devices(store: Store, tenant_id: int, scope: Scope) -> dict[int, Device]:
    """The devices a scope names now, by pk; :class:`NotFoundError` for an unknown name."""
    pks: list[int] = []
    if scope.device is not None:
        pks = [(await store.get_device(scope.device, tenant_id=tenant_id)).pk]
    elif scope.type is not None:
        device_type = await store.get_device_type(tenant_id, name=scope.type)
        devices = await store.list_devices(tenant_id, type_id=device_type.id, limit=1_000_000)
        pks = [d.pk for d in devices]
    elif scope.group is not None:
        group = await store.get_group(tenant_id, scope.group)
        pks = await store.device_pks(tenant_id, group_id=group.id)
    elif scope.asset is not None:
        asset = await store.get_asset(tenant_id, scope.asset)
        pks = [a.device_pk for a in await store.assignments(asset.id) if a.to_ms is None]
    return await store.devices_by_pk(pks) if pks else {}


async def alias_devices(store: Store, tenant_id: int, rule: Rule) -> dict[str, Device]:
    """The devices of a rule's ``devices`` aliases; :class:`NotFoundError` for an unknown id."""
    return {
        alias: await store.get_device(device_id, tenant_id=tenant_id)
        for alias, device_id in rule.devices.items()
    }


__all__ = [
    "alias_devices",
    "apply_rule_file",
    "prune_rules",
    "rule_of",
    "save_rule",
    "scope_devices",
]
