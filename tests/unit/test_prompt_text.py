"""Issue 20: prompt text names zones and lanes as people read them ("Lane 1", "Entrance"),
never by their raw ids."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from floorwalker.config import LaneConfig, StoreConfig, readable
from recommender.catalog import DEFAULT_CATALOG, load_catalog
from recommender.crm import model_from_json
from recommender.decision import Core
from recommender.eligibility import Moment, Settings
from recommender.prompts import word
from recommender.propensity import Propensity

NOW = datetime(2026, 6, 15, 12, 0, tzinfo=UTC).timestamp()
CORE = Core(load_catalog(DEFAULT_CATALOG), Propensity.from_prior(), model_from_json(None), Settings())


@pytest.mark.parametrize(
    ("ident", "name"),
    [
        ("lane-1", "Lane 1"),
        ("entrance", "Entrance"),
        ("self_checkout-2", "Self Checkout 2"),
        ("lane-10b", "Lane 10b"),
        ("x", "X"),
    ],
)
def test_an_id_reads_as_words(ident: str, name: str) -> None:
    assert readable(ident) == name


@pytest.mark.parametrize(
    ("given", "name"),
    [({}, "Lane 1"), ({"name": "Express till"}, "Express till"), ({"name": ""}, "Lane 1")],
)
def test_a_lane_is_named_after_its_id_unless_the_config_names_it(given: dict[str, str], name: str) -> None:
    assert LaneConfig.model_validate({"id": "lane-1", "pos": "pos-1", "associate": "a", **given}).name == name


def test_the_demo_store_names_its_lanes(store_config: StoreConfig) -> None:
    assert [lane.name for lane in store_config.lanes] == ["Lane 1", "Lane 2"]


@pytest.mark.parametrize(
    ("trigger", "zone", "place", "queue", "needle"),
    [
        ("checkout", "checkout", "lane-1", None, "Paid at Lane 1 without a member card."),
        ("checkout", "checkout", "lane-2", None, "Paid at Lane 2 without a member card."),
        ("footfall", "checkout", "checkout", 9, "at Checkout"),
    ],
)
def test_guest_and_store_prompts_name_the_place(
    store_config: StoreConfig, trigger: str, zone: str, place: str, queue: int | None, needle: str
) -> None:
    """The engine builds a checkout's moment with the lane's name, any other with the zone's."""
    names = {lane.id: lane.name for lane in store_config.lanes} | {z.id: z.name for z in store_config.zones}
    moment = Moment(trigger, NOW, zone, names[place], (), queue=queue, basket_cents=1250)  # type: ignore[arg-type]
    result = CORE.decide_guest(moment) if trigger == "checkout" else CORE.decide_store(moment)
    assert result.choice is not None
    w = word(result.choice)
    text = " ".join((w.headline, w.suggestion, w.why))
    assert needle in text
    assert place not in text.replace(names[place], "")  # the raw id nowhere
