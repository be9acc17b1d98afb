"""Priority classes.

A priority class gives a job its priority value and whether it is preemptible. Built-in classes
follow Run:ai/KAI: ``train`` (50, preemptible, may borrow over quota), ``build`` (100,
non-preemptible, in quota only) and ``inference`` (125, non-preemptible, in quota only).
Non-preemptible work is only admitted within quota, because nothing could ever take it back.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class PriorityClass:
    name: str
    value: int
    preemptible: bool

    @property
    def in_quota_only(self) -> bool:
        return not self.preemptible


TRAIN = PriorityClass("train", 50, True)
BUILD = PriorityClass("build", 100, False)
INFERENCE = PriorityClass("inference", 125, False)

DEFAULT_PRIORITY_CLASSES: dict[str, PriorityClass] = {
    c.name: c for c in (TRAIN, BUILD, INFERENCE)
}


def resolve_priority_class(
    name: str, classes: dict[str, PriorityClass] | None = None
) -> PriorityClass:
    """Look a class up by name; the error lists the known names so the user can fix the input."""
    known = classes if classes is not None else DEFAULT_PRIORITY_CLASSES
    try:
        return known[name]
    except KeyError:
        raise ValueError(
            f"unknown priority class {name!r}; known classes: {', '.join(sorted(known))}"
        ) from None
