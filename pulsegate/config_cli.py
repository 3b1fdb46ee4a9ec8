"""Commands of the edge area."""

from __future__ import annotations

from pulsegate.cli import Commands


def register(cmds: Commands) -> None:
    pass
