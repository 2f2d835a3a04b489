"""``python -m floorwalker.cli``: the same as ``python -m floorwalker``."""

from floorwalker.cli import entrypoint

entrypoint()
