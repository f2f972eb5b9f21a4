"""``m2mhub type``: command methods declared from a file, listed, shown and changed."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.processes import fails, m2mhub_env, ok
from tests.test_cli import ADMIN_KEY_LINE, search

METHODS_YAML = """\
# The methods of a dosing pump, as docs/commands.md describes them.
methods:
  set_rate:
    description: Set the dosing rate
    timeout_s: 10
    params:
      rate: {type: number, required: true, min: 0, max: 12.5, unit: l/h}
      mode: {type: enum, choices: [auto, manual], default: auto}
  stop:
    two_way: false
"""


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    env = m2mhub_env(tmp_path_factory.mktemp("types"))
    search(ADMIN_KEY_LINE, ok("tenant", "create", "default", env=env))
    return env


def test_type_create_with_a_methods_file_then_list_and_show(
    env: dict[str, str], tmp_path: Path
) -> None:
    methods = tmp_path / "methods.yaml"
    methods.write_text(METHODS_YAML)
    ok(
        "type",
        "create",
        "doser",
        "--key",
        "rate_l_h:number:l/h",
        "--methods-file",
        str(methods),
        env=env,
    )
    ok("type", "create", "plain", env=env)

    listed = ok("type", "list", env=env)
    rows = {line.split()[1]: line for line in listed.splitlines() if line.startswith("│")}
    assert "rate_l_h [l/h]" in rows["doser"], listed
    assert "  doser: set_rate, stop\n" in listed
    assert "plain:" not in listed and "the other types declare no methods" in listed

    shown = ok("type", "show", "doser", env=env)
    assert "method set_rate (two-way, answer within 10 s) - Set the dosing rate" in shown
    assert "rate: number 0..12.5 l/h, required" in shown
    assert 'mode: enum auto|manual, default "auto"' in shown
    assert "method stop (one-way)" in shown
    assert "none declared" in ok("type", "show", "plain", env=env)


def test_type_update_replaces_or_clears_the_methods(env: dict[str, str], tmp_path: Path) -> None:
    ok("type", "create", "valve", env=env)
    methods = tmp_path / "methods.json"  # JSON is YAML too
    methods.write_text('[{"name": "open", "params": [{"name": "pct", "type": "integer"}]}]')
    assert "1 method(s)" in ok("type", "update", "valve", "--methods-file", str(methods), env=env)
    assert "pct: integer" in ok("type", "show", "valve", env=env)
    assert "0 method(s)" in ok("type", "update", "valve", "--clear-methods", env=env)
    assert "none declared" in ok("type", "show", "valve", env=env)


def test_a_wrong_methods_file_names_the_file_and_the_field(
    env: dict[str, str], tmp_path: Path
) -> None:
    methods = tmp_path / "bad.yaml"
    methods.write_text("- name: a\n- name: b\n  params:\n    - {name: x, type: float}\n")
    printed = fails("type", "create", "bad", "--methods-file", str(methods), env=env)
    assert "bad.yaml: methods[1].params[0].type: invalid enum value 'float'" in printed, printed
    methods.write_text("methods: [\n")
    assert "line 2" in fails("type", "create", "bad", "--methods-file", str(methods), env=env)
    missing = fails("type", "create", "bad", "--methods-file", str(tmp_path / "no.yaml"), env=env)
    assert "cannot read" in missing
    assert "--methods-file or --clear-methods" in fails("type", "update", "bad", env=env)
