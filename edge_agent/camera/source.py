"""Camera sources: a video file, an RTSP or HTTP stream, or a USB camera, through OpenCV.

Which one is a typed config union (:data:`SourceConfig`). :class:`FrameSource` reads
frames on its own thread and keeps only the newest, so when inference is slower than the
camera the frames in between are skipped (and counted) rather than queued. A stream that
drops or cannot be opened is reopened with exponential back-off; a video file that ends
says so (or starts again when ``loop`` is set). Frames stay in memory: nothing here writes
them anywhere.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from edge_agent.camera.detector import Frame

log = logging.getLogger(__name__)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class FileSource(_Strict):
    kind: Literal["file"]
    path: Path
    #: Start again from the beginning when the video ends (demos).
    loop: bool = False
    #: Play at the video's own frame rate (True: like a camera, frames may be skipped) or
    #: as fast as frames can be processed (False: every frame, for evaluation and tests).
    realtime: bool = True


class RtspSource(_Strict):
    kind: Literal["rtsp"]
    url: Annotated[str, Field(pattern=r"^rtsps?://")]


class HttpSource(_Strict):
    kind: Literal["http"]
    url: Annotated[str, Field(pattern=r"^https?://")]


class UsbSource(_Strict):
    kind: Literal["usb"]
    #: /dev/video<device>
    device: int = Field(default=0, ge=0, le=63)


SourceConfig = Annotated[FileSource | RtspSource | HttpSource | UsbSource, Field(discriminator="kind")]


def describe_source(source: FileSource | RtspSource | HttpSource | UsbSource) -> str:
    """Where the frames come from, for logs and status (no credentials in URLs)."""
    if isinstance(source, FileSource):
        return f"file {source.path}"
    if isinstance(source, UsbSource):
        return f"usb /dev/video{source.device}"
    url = source.url
    scheme, _, rest = url.partition("://")
    host = rest.rsplit("@", 1)[-1]
    return f"{scheme}://{host}"


CameraState = Literal["starting", "streaming", "reconnecting", "ended", "failed"]


@dataclass(frozen=True, slots=True)
class SourceHealth:
    state: CameraState
    #: Frames read from the camera since the source started (across reconnects).
    frames_read: int
    #: Frames read but never handed over: replaced by a newer one before the consumer took
    #: it (the gateway's ``dropped_frames``). Frames a stream never delivered while it was
    #: down are not counted: the camera does not say how many there were.
    frames_skipped: int
    detail: str = ""


@dataclass(frozen=True, slots=True)
class TimedFrame:
    frame: Frame
    #: Wall-clock time the frame was read (streams), or video start + frame offset (files).
    t: float
    index: int


class FrameSource:
    """Reads frames on a background thread; :meth:`latest` hands over the newest one."""

    def __init__(
        self,
        config: FileSource | RtspSource | HttpSource | UsbSource,
        *,
        clock: Callable[[], float] = time.time,
        backoff_s: tuple[float, float] = (0.5, 30.0),
        open_capture: Callable[[FileSource | RtspSource | HttpSource | UsbSource], object] | None = None,
    ) -> None:
        self.config = config
        self._clock = clock
        self._backoff = backoff_s
        self._open = open_capture or _open_capture
        self._cond = threading.Condition()
        self._latest: TimedFrame | None = None
        self._state: CameraState = "starting"
        self._detail = ""
        self._read = 0
        self._skipped = 0
        self._taken = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._run, name=f"camera {describe_source(config)}", daemon=True
        )
        # Files played as fast as possible hand over every frame (no skipping).
        self._every_frame = isinstance(config, FileSource) and not config.realtime

    def start(self) -> FrameSource:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        with self._cond:
            self._cond.notify_all()
        self._thread.join(5)

    def health(self) -> SourceHealth:
        with self._cond:
            return SourceHealth(self._state, self._read, self._skipped, self._detail)

    def latest(self, timeout: float) -> TimedFrame | None:
        """The newest frame not handed over yet; ``None`` after ``timeout`` or when finished."""
        with self._cond:
            self._cond.wait_for(
                lambda: self._latest is not None or self._state in ("ended", "failed") or self._stop.is_set(),
                timeout,
            )
            frame, self._latest = self._latest, None
            if frame is not None:
                self._taken += 1
                self._cond.notify_all()
            return frame

    @property
    def finished(self) -> bool:
        with self._cond:
            return self._state in ("ended", "failed") and self._latest is None

    def _set(self, state: CameraState, detail: str = "") -> None:
        with self._cond:
            if state != self._state or detail != self._detail:
                log.info("camera %s: %s %s", describe_source(self.config), state, detail)
            self._state, self._detail = state, detail
            self._cond.notify_all()

    def _put(self, frame: Frame, t: float, index: int) -> None:
        with self._cond:
            if self._every_frame:
                self._cond.wait_for(lambda: self._latest is None or self._stop.is_set())
            elif self._latest is not None:
                self._skipped += 1
            self._latest = TimedFrame(frame, t, index)
            self._read += 1
            self._cond.notify_all()

    def _run(self) -> None:
        delay = self._backoff[0]
        is_file = isinstance(self.config, FileSource)
        while not self._stop.is_set():
            cap = self._open(self.config)
            if not cap.isOpened():  # type: ignore[attr-defined]
                what = describe_source(self.config)
                if is_file:
                    self._set("failed", f"cannot open {what} (missing or not a video)")
                    return
                self._set("reconnecting", f"cannot open {what}; retrying in {delay:.0f} s")
                self._stop.wait(delay)
                delay = min(delay * 2, self._backoff[1])
                continue
            delay = self._backoff[0]
            ended = self._pump(cap)
            cap.release()  # type: ignore[attr-defined]
            if self._stop.is_set():
                return
            if is_file:
                assert isinstance(self.config, FileSource)
                if ended and self.config.loop:
                    continue
                self._set("ended", "the video ended")
                return
            self._set("reconnecting", "the stream dropped; reconnecting")
            self._stop.wait(delay)

    def _pump(self, cap: object) -> bool:
        """Read until the capture fails; True when it ended normally (file)."""
        fps = float(cap.get(5)) if isinstance(self.config, FileSource) else 0.0  # type: ignore[attr-defined]
        realtime_file = isinstance(self.config, FileSource) and self.config.realtime and fps > 0
        start = self._clock()
        index = 0
        self._set("streaming")
        while not self._stop.is_set():
            ok, frame = cap.read()  # type: ignore[attr-defined]
            if not ok or frame is None:
                return True
            if isinstance(self.config, FileSource):
                t = start + index / (fps or 10.0)
                if realtime_file:
                    # Like a camera: a frame becomes available at its time, not before.
                    wait = t - self._clock()
                    if wait > 0:
                        self._stop.wait(wait)
            else:
                t = self._clock()
            self._put(frame, t, index)
            index += 1
        return False


def _open_capture(config: FileSource | RtspSource | HttpSource | UsbSource) -> object:
    import cv2

    if isinstance(config, FileSource):
        return cv2.VideoCapture(str(config.path))
    if isinstance(config, UsbSource):
        return cv2.VideoCapture(config.device)
    return cv2.VideoCapture(config.url, cv2.CAP_FFMPEG)
