"""The action catalog: the shipped one is valid; a broken one is refused with file, line
and key; hot reload keeps the previous catalog when the new file is broken."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from broker_config.contract import PromptKind
from floorwalker.errors import ConfigError
from recommender.catalog import DEFAULT_CATALOG, CatalogWatcher, Eligibility, load_catalog, parse_catalog

GOOD_ACTION = """\
version: 1
actions:
  - id: greet
    kind: greet_vip
    value: 5
    text:
      headline: "{tier} member"
      suggestion: "Say hello."
      why: "In {zone}."
"""


def test_shipped_catalog_has_all_ten_actions() -> None:
    catalog = load_catalog(DEFAULT_CATALOG)
    assert {a.kind for a in catalog.actions} == set(PromptKind)
    assert catalog.policy.holdout_pct > 0


@pytest.mark.parametrize(
    ("old", "new", "line", "problem"),
    [
        (
            "    value: 5\n",
            "    value: 5\n    colour: red\n",
            6,
            "actions.0.colour: Extra inputs are not permitted",
        ),
        (
            'why: "In {zone}."',
            'why: "In {aisle}."',
            9,
            "actions.0.text.why: unknown template variable {aisle}",
        ),
        ('why: "In {zone}."', 'why: "In {zone!r}."', 9, "must be a plain name"),
        (
            "    value: 5\n",
            "    value: 5\n    caps: {per_visit: 3, per_day: 2}\n",
            6,
            "actions.0.caps: impossible caps: per_visit=3 is more than per_day=2",
        ),
        (
            "    value: 5\n",
            "    value: 5\n    caps: {per_week: 0}\n",
            6,
            "caps.per_week: Input should be greater",
        ),
        ("kind: greet_vip", "kind: greet_everyone", 4, "actions.0.kind: Input should be"),
        ("    value: 5\n", "    value: -1\n", 5, "actions.0.value: Input should be greater than 0"),
        ("kind: greet_vip", "kind: long_dwell_help", 3, "long_dwell_help needs eligible.min_dwell_s"),
        ("actions:", "actions: [\n", 4, "not valid YAML"),
    ],
)
def test_broken_catalog_names_file_line_and_key(
    tmp_path: Path, old: str, new: str, line: int, problem: str
) -> None:
    path = tmp_path / "catalog.yaml"
    path.write_text(GOOD_ACTION.replace(old, new))
    with pytest.raises(ConfigError) as err:
        load_catalog(path)
    message = str(err.value)
    assert message.startswith(f"{path}:"), message
    assert problem in message, message
    assert f"{path}:{line}:" in message, message


@pytest.mark.parametrize(
    ("given", "filters"),
    [
        ({}, False),
        ({"consent": "recognition", "min_dwell_s": 60, "birthday_within_days": 3}, False),
        ({"consent": "marketing"}, True),
        ({"tiers": ["gold"]}, True),
        ({"segments": ["champions"]}, True),
        ({"lifecycle": ["lapsing"]}, True),
        ({"zones": ["entrance"]}, True),
        ({"min_clv": 0}, True),
    ],
)
def test_only_member_filters_make_the_core_check_an_action(given: dict[str, object], filters: bool) -> None:
    assert Eligibility.model_validate(given).filters_members is filters


def test_duplicate_action_ids_are_refused() -> None:
    doubled = GOOD_ACTION + GOOD_ACTION.split("actions:\n")[1]
    with pytest.raises(ConfigError, match="duplicate action id 'greet'"):
        parse_catalog(doubled, "c.yaml")


def test_hot_reload_takes_a_good_file_and_keeps_the_old_one_on_a_broken_file(tmp_path: Path) -> None:
    path = tmp_path / "catalog.yaml"
    path.write_text(GOOD_ACTION)
    watcher = CatalogWatcher.open(path)
    assert watcher.poll() is False  # unchanged

    path.write_text(GOOD_ACTION.replace("value: 5", "value: 7"))
    os.utime(path, (1, 1))  # a different mtime, whatever the clock's resolution
    assert watcher.poll() is True and watcher.current.actions[0].value == 7

    path.write_text(GOOD_ACTION.replace("value: 5", "value: lots"))
    os.utime(path, (2, 2))
    assert watcher.poll() is False
    assert watcher.current.actions[0].value == 7  # the previous catalog stays in force
    assert watcher.last_error is not None and "actions.0.value" in watcher.last_error
