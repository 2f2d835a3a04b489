"""``floorwalker camera-snapshot``: one camera frame with the configured geometry, the
detector's views and the people it found drawn on it.

The root module registers this command on the app.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from floorwalker.cli.options import friendly
from floorwalker.errors import ConfigError


@friendly
def camera_snapshot(
    gateway_config: Annotated[Path, typer.Option("--gateway-config", help="The gateway YAML.")],
    out: Annotated[Path, typer.Option("--out", help="PNG to write (debug: the frame is stored here).")],
    camera: Annotated[str | None, typer.Option("--camera", help="Camera id (default: the first).")] = None,
) -> None:
    """Debug aid: one frame with lines, zones, queues, detector views and people found, as a PNG."""
    from edge_agent.camera.overlay import snapshot
    from edge_agent.gateway_config import load_gateway_config

    gw = load_gateway_config(gateway_config)
    cams = [c for c in gw.cameras if camera is None or c.id == camera]
    if not cams:
        raise ConfigError(
            f"{gateway_config}: no camera {camera!r} (have: {', '.join(c.id for c in gw.cameras)})"
        )
    snapshot(cams[0], out)
    typer.echo(f"wrote {out} (a camera frame: keep it on the gateway, delete it when done)")
