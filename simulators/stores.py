"""Where the simulated stores' files live: the demo store, the 20-zone store, and the demo's
camera gateway. One place, so the CLI, the demo and the benchmarks name the same files."""

from __future__ import annotations

from pathlib import Path
from typing import Final

DATA_DIR: Final = Path(__file__).resolve().parent / "data"
#: The demo store: five zones, a CRM fixture, BLE keys (``make demo`` and most tests).
DEMO_STORE: Final = DATA_DIR / "demo_store.yaml"
#: A 20-zone store with a large CRM (``bench simulate``; made by scripts/make-big-store.py).
BIG_STORE: Final = DATA_DIR / "big_store.yaml"
#: The demo's camera gateway at the entrance (OpenCV's sample video).
DEMO_CAMERA_GATEWAY: Final = DATA_DIR / "gw_entrance_camera.yaml"
