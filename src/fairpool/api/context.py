"""What the routers need from the running server, passed in once."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from fairpool.services.status import StatusBoard
from fairpool.store.db import Store


@dataclass
class AppContext:
    store: Store
    data_dir: Path
    board: StatusBoard = field(default_factory=StatusBoard)
    wake: Callable[[], None] = lambda: None
