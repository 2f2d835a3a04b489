"""Flags in the help take no value, so their help shows none.

Typer's rich help (0.2x) prints a type after every option, flags included: ``--json
<bool>`` reads as if ``--json`` wanted an argument. Its plain help leaves the type out for
flags (``TyperOption.get_help_record``); :func:`hide_flag_types` makes the rich help do the
same. ``tests/unit/test_cli_help.py`` checks every command's help, so a Typer that renders
flags differently is noticed.
"""

from __future__ import annotations

import typer
from typer.core import TyperOption

_shown = TyperOption.display_type_rich


def _flag_type_hidden(self: TyperOption, ctx: typer.Context) -> str | None:
    if self.is_flag or self.count:
        return None
    return _shown(self, ctx)


def hide_flag_types() -> None:
    """Leave the type placeholder out of flags' rows in the rich help (idempotent)."""
    TyperOption.display_type_rich = _flag_type_hidden  # type: ignore[method-assign,assignment]
