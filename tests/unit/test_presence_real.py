"""`bench presence-real`'s motion hint: the robot's drive log read as the member app's step
detector, carried in the tag's frames (hand-built logs and readings, not the data set)."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.presence_real import HINT_LAG_S, Run, motion_hint, read_motion, to_records
from edge_agent.ble.frames import MemberAdvert, parse
from edge_agent.ble.sightings import Advert

LOG = [(100.0, "forward"), (103.0, "left"), (104.0, "stop"), (106.0, "reverse"), (108.0, "right")]


@pytest.mark.parametrize(
    ("ts", "hint"),
    [
        (100.5, None),  # the first command is not HINT_LAG_S old yet: no hint
        (101.0, True),  # driving forward for HINT_LAG_S
        (103.9, True),  # turned on the spot 0.9 s ago: still the forward drive
        (104.0, False),  # turning on the spot barely moves the tag
        (105.5, False),  # stopped
        (107.0, True),  # reversing moves it too
        (200.0, False),  # after the last command, a turn
    ],
)
def test_the_hint_follows_the_drive_log_one_step_detector_lag_late(ts: float, hint: bool | None) -> None:
    assert HINT_LAG_S == 1.0
    assert motion_hint(LOG)(ts) is hint


def test_drive_logs_are_read_in_time_order(tmp_path: Path) -> None:
    (tmp_path / "b.txt").write_text("1628000010.5,stop,0.15\n")
    (tmp_path / "a.txt").write_text("1628000001.25,forward,0.15\n1628000020.0,left,0.15\n\n")
    assert read_motion(tmp_path, ["b.txt", "a.txt"]) == [
        (1628000001.25, "forward"),
        (1628000010.5, "stop"),
        (1628000020.0, "left"),
    ]


def test_with_a_hint_every_advert_carries_it_and_without_one_none() -> None:
    run = Run(
        ts=[100.5, 101.5, 105.0], xy=[(1.0, 1.0)] * 3, rssi=[[-60.0, None], [-61.0, -70.0], [-62.0, -71.0]]
    )
    hinted = to_records(run, ["a1", "a2"], motion_hint(LOG))
    plain = to_records(run, ["a1", "a2"])
    assert [gw for gw, _ in hinted] == ["a1", "a1", "a2", "a1", "a2"]  # an unheard cell sends nothing

    def hints(records: list[tuple[str, Advert]]) -> list[bool | None]:
        out: list[bool | None] = []
        for _gw, advert in records:
            assert isinstance(advert.data, bytes)
            frame = parse(advert.data)
            assert isinstance(frame, MemberAdvert)
            out.append(frame.moving)
        return out

    assert hints(hinted) == [None, True, True, False, False]
    assert hints(plain) == [None] * 5
