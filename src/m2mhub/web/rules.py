"""The rules console: the list with open alarms, enable and disable, the editor, the trace,
and a dry run against stored data.

Saving, enabling and testing are calls to the rules API from the browser; the one route here
that takes a body turns the editor's YAML into the JSON the API reads, and changes nothing.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Annotated, Any, Final

import yaml
from fastapi import APIRouter, Body, Request
from fastapi.responses import HTMLResponse

from m2mhub.api.deps import PlatformDep, Viewer
from m2mhub.api.rules import rule_devices
from m2mhub.core.errors import PayloadError
from m2mhub.platform import Platform
from m2mhub.rules.engine import TraceEntry
from m2mhub.rules.model import Rule
from m2mhub.rules.service import rule_of
from m2mhub.store.models import StoredRule
from m2mhub.web.routing import PREFIX, console_router
from m2mhub.web.templating import render

router = console_router()
# Answers in JSON, like the API, for the editor's script.
json_router = APIRouter(prefix=PREFIX, include_in_schema=False)

OPEN: Final = ("active", "acknowledged")
CONDITIONS: Final = ("threshold", "rate", "no_data", "connection", "geofence", "expression")
# What the editor starts a new rule with.
NEW_RULE: Final = """\
name: new-rule
description: Power above 100 kW
scope: {type: meter}
condition:
  threshold: {key: power_kw, above: 100, clear_below: 90}
  for: 5m
actions:
  - alarm: {severity: major}
"""


@dataclass
class RuleRow:
    """One rule as the list shows it."""

    stored: StoredRule
    rule: Rule
    open_alarms: int

    @property
    def scope(self) -> str:
        return " ".join(
            f"{k} {v}" for k, v in self.rule.scope.model_dump(exclude_none=True).items()
        )

    @property
    def kind(self) -> str:
        if self.rule.condition is None:
            return "compute"
        return next(c for c in CONDITIONS if getattr(self.rule.condition, c) is not None)


def has_secrets(rule: Rule) -> bool:
    """Whether showing the rule hides something (webhook secrets, notification passwords):
    such a rule cannot be saved back from what the console shows."""
    return rule.to_data(redact=True) != rule.to_data()


def as_yaml(data: dict[str, Any]) -> str:
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True, width=100)


async def _rows(platform: Platform, tenant_id: int) -> list[RuleRow]:
    alarms = await platform.store.list_alarms(tenant_id, status=OPEN, limit=100_000)
    counts = Counter(a.rule_name for a in alarms)
    return [
        RuleRow(stored, rule_of(stored), counts[stored.name])
        for stored in await platform.store.list_rules(tenant_id)
    ]


@router.get("/rules", response_class=HTMLResponse)
async def rules_page(request: Request, who: Viewer, platform: PlatformDep) -> HTMLResponse:
    """Every rule with its state and open alarms; htmx reloads the table after a change."""
    context = {"rows": await _rows(platform, who.tenant_id)}
    if request.headers.get("HX-Request") == "true":
        return render(request, "_rules.html", who, context)
    return render(request, "rules.html", who, context)


@router.get("/rules/new", response_class=HTMLResponse)
async def new_rule_page(request: Request, who: Viewer, platform: PlatformDep) -> HTMLResponse:
    return render(request, "rule.html", who, {"row": None, "text": NEW_RULE, "editable": True})


def _trace(platform: Platform, stored: StoredRule) -> list[TraceEntry] | None:
    """The rule's recent evaluations, or None when this process does not run the rules."""
    if "rules" not in platform.settings.role_set():
        return None
    return list(platform.rules.trace(stored.id))


@router.get("/rules/{name}", response_class=HTMLResponse)
async def rule_page(
    request: Request, name: str, who: Viewer, platform: PlatformDep
) -> HTMLResponse:
    stored = await platform.store.get_rule(who.tenant_id, name)
    rule = rule_of(stored)
    alarms = await platform.store.list_alarms(
        who.tenant_id, status=OPEN, rule_name=name, limit=100_000
    )
    secrets = has_secrets(rule)
    context = {
        "row": RuleRow(stored, rule, len(alarms)),
        "text": as_yaml(rule.to_data(redact=True)),
        "editable": not secrets,
        "secrets": secrets,
        "devices": await rule_devices(name, who, platform),
        "trace": _trace(platform, stored),
    }
    return render(request, "rule.html", who, context)


@json_router.post("/rules/parse")
async def parse_definition(
    who: Viewer, text: Annotated[str, Body(media_type="text/plain", max_length=200_000)]
) -> dict[str, Any]:
    """The editor's text (YAML, or JSON, which is YAML too) as the JSON object the API reads.

    Only the syntax is checked here; the API says what is wrong with the rule itself.
    """
    del who
    try:
        data = yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        where = f"line {exc.problem_mark.line + 1}: " if exc.problem_mark else ""
        raise PayloadError(
            f"{where}{exc.problem or 'this is not valid YAML'}", field="definition"
        ) from None
    except yaml.YAMLError:
        raise PayloadError("this is not valid YAML or JSON", field="definition") from None
    if not isinstance(data, dict):
        raise PayloadError(
            "the definition is one rule: name, scope, condition, actions", field="definition"
        )
    if data.get("name") is not None and not isinstance(data["name"], str):
        raise PayloadError("name: write the rule's name as text", field="name")
    return data
