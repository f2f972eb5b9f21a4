"""Rules in the store: apply a rule file or an API body, read them back."""

from __future__ import annotations

import msgspec

from m2mhub.rules.model import Rule, RuleError, RuleFile, parse_rule, parse_rule_file
from m2mhub.store.base import Store
from m2mhub.store.models import StoredRule


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
        raise RuleError(f"{source}: tenant {parsed.tenant!r} does not exist", field="tenant")
    applied = []
    for rule in parsed.rules:
        _, created = await save_rule(store, tenant.id, rule, source="file")
        applied.append((rule.name, created))
    return parsed, applied


__all__ = ["apply_rule_file", "rule_of", "save_rule"]
