"""What the routers need from the running server, passed in once."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from fairpool.store.db import Store


@dataclass
class AppContext:
    store: Store
    data_dir: Path
    wake: Callable[[], None] = lambda: None
