"""Rules through the REST API, a rules file at start, and the CLI."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from m2mhub.config import Settings
from m2mhub.core.timeutil import now_ms
from m2mhub.core.values import Role
from m2mhub.platform import Platform
from m2mhub.rules.model import RuleError, parse_rule_file
from m2mhub.store import SqliteStore
from m2mhub.store.models import AuditEntry
from tests.processes import fails, m2mhub_env, ok
from tests.rules.helpers import Hub

RULE = {
    "name": "hot",
    "description": "Too hot",
    "scope": {"type": "sensor"},
    "condition": {"threshold": {"key": "temp", "above": 80, "clear_below": 75}, "for": "5m"},
    "actions": [{"alarm": {"severity": "critical"}}],
}

RULES_YAML = """
tenant: default
rules:
  - name: tank-low
    scope: {device: tank-1}
    condition:
      threshold: {key: level, below: 10, clear_above: 20}
    actions:
      - alarm: {severity: warning}
      - command: {device: pump-1, method: start}
  - name: hot
    scope: {type: sensor}
    condition:
      threshold: {key: temp, above: 80}
      for: 5m
    actions:
      - alarm: {}
"""


async def test_crud_and_roles(hub: Hub) -> None:
    operator = hub.as_key(await hub.key(Role.OPERATOR))
    refused = await hub.client.post("/api/v1/rules", json=RULE, headers=operator)
    assert refused.status_code == 403
    created = await hub.client.post("/api/v1/rules", json=RULE, headers=hub.admin)
    assert created.status_code == 201
    assert created.json()["rule"]["condition"]["for"] == "5m"
    assert created.json()["source"] == "api" and created.json()["enabled"] is True
    assert (await hub.client.post("/api/v1/rules", json=RULE, headers=hub.admin)).status_code == 409
    changed = RULE | {"description": "Hotter"}
    replaced = await hub.client.put("/api/v1/rules/hot", json=changed, headers=hub.admin)
    assert replaced.json()["rule"]["description"] == "Hotter"
    disabled = await hub.client.post("/api/v1/rules/hot/disable", headers=hub.admin)
    assert disabled.json()["enabled"] is False
    [listed] = (await hub.client.get("/api/v1/rules", headers=operator)).json()
    assert listed["name"] == "hot" and listed["enabled"] is False
    assert hub.platform.rules.rules[next(iter(hub.platform.rules.rules))].stored.enabled is False
    enabled = await hub.client.post("/api/v1/rules/hot/enable", headers=hub.admin)
    assert enabled.json()["enabled"] is True
    deleted = await hub.client.delete("/api/v1/rules/hot", headers=hub.admin)
    assert deleted.status_code == 204
    assert (await hub.client.get("/api/v1/rules/hot", headers=hub.admin)).status_code == 404
    assert hub.platform.rules.rules == {}
    # Every change is in the audit log, under the key that made it.
    audit = await hub.platform.store.list_audit(hub.tenant.id, start=0, end=now_ms() + 1)
    changes = [(e.action, e.target) for e in reversed(audit) if e.action.startswith("rule.")]
    assert changes == [
        ("rule.create", "rule:hot"),
        ("rule.replace", "rule:hot"),
        ("rule.disable", "rule:hot"),
        ("rule.enable", "rule:hot"),
        ("rule.delete", "rule:hot"),
    ]
    assert all(e.actor.startswith("key:") and e.result == "ok" for e in audit)


async def test_a_disabled_rule_does_not_fire(hub: Hub) -> None:
    await hub.new_device("t1")
    await hub.rule(RULE | {"condition": {"threshold": {"key": "temp", "above": 80}}})
    await hub.client.post("/api/v1/rules/hot/disable", headers=hub.admin)
    await hub.send("t1", hub.clock.now, temp=99)
    assert await hub.alarms() == []
    await hub.client.post("/api/v1/rules/hot/enable", headers=hub.admin)
    await hub.send("t1", hub.clock.now + 1, temp=99)
    assert len(await hub.alarms()) == 1


async def test_the_engine_queue_is_in_the_metrics(hub: Hub) -> None:
    await hub.platform.rules.drain()
    metrics = (await hub.client.get("/metrics")).text
    assert 'm2mhub_bus_lag{subscriber="rules"}' in metrics
    assert 'm2mhub_bus_dropped_total{subscriber="rules"} 0.0' in metrics


async def test_invalid_rules_name_the_field(hub: Hub) -> None:
    bad = RULE | {"condition": {"threshold": {"key": "temp", "above": 80, "clear_below": 90}}}
    response = await hub.client.post("/api/v1/rules", json=bad, headers=hub.admin)
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["field"] == "condition.threshold" and "clear_below" in error["message"]
    unsafe = RULE | {"condition": {"expression": "__import__('os').getcwd()"}}
    response = await hub.client.post("/api/v1/rules", json=unsafe, headers=hub.admin)
    assert (
        response.status_code == 422 and response.json()["error"]["field"] == "condition.expression"
    )


def test_rule_file_errors_name_the_rule_and_field() -> None:
    bad = RULES_YAML.replace("for: 5m", "for: five minutes")
    try:
        parse_rule_file(bad, source="rules.yaml")
    except RuleError as exc:
        assert exc.field == "rules[1].condition.for"
        assert exc.message.startswith("rules.yaml:15: rules[1].condition.for: 'five minutes'")
    else:
        raise AssertionError("accepted a bad duration")
    assert [r.name for r in parse_rule_file(RULES_YAML).rules] == ["tank-low", "hot"]


@pytest.mark.parametrize(
    ("change", "line", "field"),
    [
        # an unknown key: the line of that key
        (
            ("clear_above: 20}", "clear_above: 20, colour: red}"),
            7,
            "rules[0].condition.threshold.colour",
        ),
        # a type mismatch
        (("below: 10", "below: low"), 7, "rules[0].condition.threshold.below"),
        # an expression that could run forever is not in the language
        (
            ("threshold: {key: temp, above: 80}", "expression: 'temp ** 99999999 > 1'"),
            14,
            "rules[1].condition.expression",
        ),
        # the same name twice: the second one
        (("name: hot", "name: tank-low"), 11, "rules[1]"),
    ],
)
def test_rule_file_errors_name_the_line(change: tuple[str, str], line: int, field: str) -> None:
    with pytest.raises(RuleError) as caught:
        parse_rule_file(RULES_YAML.replace(*change), source="rules.yaml")
    assert caught.value.field == field
    assert caught.value.message.startswith(f"rules.yaml:{line}: "), caught.value.message


def test_a_bare_list_of_rules_names_the_line_too() -> None:
    bare = "- name: a\n  scope: {device: d}\n  condition:\n    threshold: {key: k}\n"
    with pytest.raises(RuleError) as caught:
        parse_rule_file(bare, source="list.yaml")
    assert caught.value.message.startswith("list.yaml:4: rules[0].condition.threshold"), (
        caught.value.message
    )


async def test_rules_file_is_applied_at_start(tmp_path: Path) -> None:
    path = tmp_path / "rules.yaml"
    path.write_text(RULES_YAML)
    settings = Settings(data_dir=tmp_path, roles="rules", rules_file=str(path))
    store = SqliteStore(tmp_path / "m2mhub.db")
    async with store:
        await store.create_tenant("default", "Default")
    async with Platform(settings, store=SqliteStore(tmp_path / "m2mhub.db")) as platform:
        names = sorted(r.rule.name for r in platform.rules.rules.values())
        assert names == ["hot", "tank-low"]
        [hot] = [r for r in platform.rules.rules.values() if r.rule.name == "hot"]
        assert hot.stored.source == "file"


def test_cli_apply_and_list(tmp_path: Path) -> None:
    env = m2mhub_env(tmp_path, COLUMNS="200")
    ok("tenant", "create", "default", env=env)
    rules = tmp_path / "rules.yaml"
    rules.write_text(RULES_YAML)
    applied = ok("rules", "apply", str(rules), env=env)
    assert "created rule tank-low" in applied and "created rule hot" in applied
    assert "replaced rule hot" in ok("rules", "apply", str(rules), env=env)
    listed = ok("rules", "list", env=env)
    assert "tank-low" in listed and "device=tank-1" in listed and "alarm, command" in listed
    assert "threshold, for 5m" in listed
    rules.write_text(RULES_YAML.replace("below: 10", "below: ten"))
    error = fails("rules", "apply", str(rules), env=env)
    assert "rules[0].condition.threshold.below" in error
    # --prune deletes what the file no longer names; without it, nothing is deleted.
    rules.write_text(RULES_YAML.split("  - name: hot")[0])
    assert "deleted" not in ok("rules", "apply", str(rules), env=env)
    pruned = ok("rules", "apply", str(rules), "--prune", env=env)
    assert "replaced rule tank-low" in pruned and "deleted rule hot" in pruned
    listed = ok("rules", "list", env=env)
    assert "tank-low" in listed and "hot" not in listed
    # Each rule the CLI created, replaced or pruned is in the audit log, under the OS user.
    audit = asyncio.run(_audit(tmp_path / "m2mhub.db"))
    assert [(e.action, e.target) for e in reversed(audit)] == [
        ("rule.create", "rule:tank-low"),
        ("rule.create", "rule:hot"),
        ("rule.replace", "rule:tank-low"),
        ("rule.replace", "rule:hot"),
        ("rule.replace", "rule:tank-low"),
        ("rule.replace", "rule:tank-low"),
        ("rule.delete", "rule:hot"),
    ]
    assert all(e.actor.startswith("cli:") and e.details == {"file": str(rules)} for e in audit)
    assert "rule" in ok("alarms", "list", "--status", "active", env=env)


async def _audit(path: Path) -> list[AuditEntry]:
    """The rule changes in the audit log of the default tenant, newest first."""
    async with SqliteStore(path) as store:
        tenant = await store.get_tenant("default")
        assert tenant is not None
        entries = await store.list_audit(tenant.id, start=0, end=now_ms() + 1, action="rule.*")
    return entries
