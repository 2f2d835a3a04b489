"""``floorwalker contract``: the wire contract.

The root module registers this command on the app.
"""

from __future__ import annotations

import json
from typing import Annotated

import typer

from floorwalker.cli.options import friendly


@friendly
def contract(
    schema: Annotated[bool, typer.Option("--schema", help="Print every payload's JSON Schema.")] = False,
) -> None:
    """Print the wire contract: topics, QoS, retain, payload types (and JSON Schemas)."""
    from broker_config.contract import MAX_PAYLOAD_BYTES, SPECS, Topics

    topics = Topics()
    if schema:
        typer.echo(
            json.dumps({s.model.__name__: s.model.model_json_schema() for s in SPECS.values()}, indent=2)
        )
        return
    typer.echo(f"payload limit: {MAX_PAYLOAD_BYTES} bytes")
    for spec in SPECS.values():
        subject = "{id}" if None in spec.levels else None
        topic = topics.build(spec.kind, "{store}", subject)
        typer.echo(
            f"{topic:<45} {spec.model.__name__:<14} qos {spec.qos}{'  retained' if spec.retain else ''}"
        )
