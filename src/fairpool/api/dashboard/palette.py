"""A stable colour per project: each project takes the palette slot its name hashes to, or the
next free one among the projects shown, so two projects on one page rarely share a colour and a
project keeps its colour from page to page."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

COLORS = ("#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#76b7b2", "#d4a017", "#b07aa1",
          "#ff9da7", "#9c755f", "#3d9be9", "#6bbf59", "#d37295")
HIDDEN = "#a3a9b3"  # another project's: shown, never named
DEPARTMENT = "#64748b"


def _slot(name: str) -> int:
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:4], "big") % len(COLORS)


def assign(projects: Iterable[str]) -> dict[str, str]:
    """Colours for these projects (sorted by name, so the same set always gets the same)."""
    taken: set[int] = set()
    out: dict[str, str] = {}
    for name in sorted(set(projects)):
        slot = _slot(name)
        if len(taken) < len(COLORS):
            while slot in taken:
                slot = (slot + 1) % len(COLORS)
        taken.add(slot)
        out[name] = COLORS[slot]
    return out


class Palette:
    """Colours of the projects a page shows; unknown names get their hash slot."""

    def __init__(self, projects: Iterable[str]) -> None:
        self.colors = assign(projects)

    def __call__(self, project: str | None) -> str:
        if project is None:
            return HIDDEN
        found = self.colors.get(project)
        return found if found is not None else COLORS[_slot(project)]

    def legend(self) -> list[tuple[str, str]]:
        return sorted(self.colors.items())
