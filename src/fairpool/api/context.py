"""What the routers need from the running server, passed in once."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from fairpool.api.limits import RateLimiter, SubmitLimiter
from fairpool.auth.secretbox import SecretBox
from fairpool.control.stats import LoopStats
from fairpool.scheduler import SchedulerConfig
from fairpool.services.audit import Throttle
from fairpool.services.tokens import Authenticator, TokenLimits
from fairpool.services.webhook_delivery import WebhookPolicy
from fairpool.store.db import Store


@dataclass
class AppContext:
    store: Store
    data_dir: Path
    auth: Authenticator
    box: SecretBox
    wake: Callable[[], None] = lambda: None
    submit_limiter: SubmitLimiter = field(default_factory=lambda: SubmitLimiter(
        RateLimiter(20.0, 500), RateLimiter(100.0, 2500)))
    token_limits: TokenLimits = field(default_factory=TokenLimits)
    #: how many refused requests of each caller the audit log records (the rest are counted)
    refusals: Throttle = field(default_factory=lambda: Throttle(1.0, 20))
    max_pending_per_project: int = 10_000
    max_body_bytes: int = 1 << 20
    stats: LoopStats | None = None  # the control loop's cycle counters (shared memory)
    #: the scheduler's settings (a dry run schedules as the loop does)
    scheduler: SchedulerConfig = field(default_factory=SchedulerConfig)
    mount_roots: tuple[Path, ...] = ()  # host directories jobs may mount from (none: no mounts)
    webhooks: WebhookPolicy = field(default_factory=WebhookPolicy)  # how deliveries are made
