"""Frame sources: a real video file frame by frame, a file that is missing, and a stream
that cannot be opened, drops and comes back (a scripted stand-in for the network camera),
with back-off, frame skipping when the consumer is slow, and the health it reports."""

from __future__ import annotations

import itertools
import threading
import time
from pathlib import Path

import numpy as np

from edge_agent.camera.source import FileSource, FrameSource, HttpSource, RtspSource, describe_source

VTEST = Path("/usr/share/doc/opencv-doc/examples/data/vtest.avi")


class ScriptedCapture:
    """Plays ``frames`` frames then fails, like an RTSP stream that drops; or never opens."""

    def __init__(self, opens: bool, frames: int, pace_s: float = 0.0) -> None:
        self.opens, self.left, self.pace_s = opens, frames, pace_s

    def isOpened(self) -> bool:
        return self.opens

    def read(self) -> tuple[bool, np.ndarray | None]:
        if self.pace_s:
            time.sleep(self.pace_s)
        if self.left <= 0:
            return False, None
        self.left -= 1
        return True, np.zeros((4, 4, 3), np.uint8)

    def get(self, _prop: int) -> float:
        return 0.0

    def release(self) -> None:
        pass


def test_a_video_file_played_for_evaluation_hands_over_every_frame_then_ends() -> None:
    source = FrameSource(FileSource(kind="file", path=VTEST, realtime=False)).start()
    indices = []
    try:
        while (tf := source.latest(timeout=5)) is not None:
            indices.append(tf.index)
            if len(indices) == 40:
                break
        assert indices == list(range(40))
        assert source.health().frames_skipped == 0
    finally:
        source.stop()


def test_a_missing_file_fails_with_its_name(tmp_path: Path) -> None:
    source = FrameSource(FileSource(kind="file", path=tmp_path / "gone.avi")).start()
    assert source.latest(timeout=5) is None
    health = source.health()
    assert health.state == "failed" and "gone.avi" in health.detail and "cannot open" in health.detail
    source.stop()


def test_a_stream_that_drops_is_reopened_with_backoff() -> None:
    opened: list[float] = []
    script = [
        ScriptedCapture(False, 0),
        ScriptedCapture(False, 0),
        ScriptedCapture(True, 5, 0.01),
        ScriptedCapture(True, 10_000, 0.01),
    ]

    def open_capture(_cfg: object) -> object:
        opened.append(time.monotonic())
        return script.pop(0) if len(script) > 1 else script[0]

    source = FrameSource(
        RtspSource(kind="rtsp", url="rtsp://user:secret@10.0.0.9/cam"),
        backoff_s=(0.05, 0.2),
        open_capture=open_capture,
    )
    states = []
    source.start()
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and len(opened) < 4:
            states.append(source.health().state)
            source.latest(timeout=0.01)
        assert len(opened) >= 4  # two failed opens, one stream that dropped, one more
        assert "reconnecting" in states and "streaming" in states
        # Back-off doubles between failed opens: 0.05 s then 0.1 s.
        assert opened[2] - opened[1] >= 0.09
    finally:
        source.stop()


def test_a_slow_consumer_gets_the_newest_frame_and_older_ones_are_skipped() -> None:
    source = FrameSource(
        HttpSource(kind="http", url="http://cam.local/video.mjpg"),
        open_capture=lambda _cfg: ScriptedCapture(True, 10_000, 0.002),
    ).start()
    try:
        seen = []
        for _ in range(5):
            # Inference slower than the camera: three more frames arrive before we take one.
            read = source.health().frames_read
            deadline = time.monotonic() + 30
            while source.health().frames_read < read + 3 and time.monotonic() < deadline:
                time.sleep(0.005)
            tf = source.latest(timeout=1)
            assert tf is not None
            seen.append(tf.index)
        assert all(b - a > 1 for a, b in itertools.pairwise(seen))
        assert source.health().frames_skipped > 0
    finally:
        source.stop()


def test_descriptions_never_show_credentials() -> None:
    assert describe_source(RtspSource(kind="rtsp", url="rtsp://user:secret@10.0.0.9:554/cam")) == (
        "rtsp://10.0.0.9:554/cam"
    )


def test_stop_ends_the_reader_thread() -> None:
    source = FrameSource(
        RtspSource(kind="rtsp", url="rtsp://x/y"),
        open_capture=lambda _cfg: ScriptedCapture(True, 10**9, 0.001),
    ).start()
    source.latest(timeout=1)
    source.stop()
    assert not any(t.name.startswith("camera rtsp://x") for t in threading.enumerate())


def test_frames_the_consumer_never_took_are_counted_as_skipped() -> None:
    # The real video played "like a camera", on a clock that says every frame is already
    # due: the reader runs through the whole file while nobody takes a frame, so all but
    # the newest are replaced unseen. The count is exact: read = handed over + skipped.
    clock = itertools.chain([0.0], itertools.repeat(1e9)).__next__
    source = FrameSource(FileSource(kind="file", path=VTEST, realtime=True), clock=clock).start()
    try:
        deadline = time.monotonic() + 60
        while source.health().state != "ended":
            assert time.monotonic() < deadline, source.health()
            time.sleep(0.01)
        health = source.health()
        assert health.frames_read == 795  # vtest.avi's frames
        last = source.latest(timeout=1)
        assert last is not None and last.index == 794
        assert source.latest(timeout=0) is None
        assert source.health().frames_skipped == 794 == health.frames_read - 1
    finally:
        source.stop()
