"""Tables of per-project webhooks: the webhooks themselves (their URL and signing secret sealed
with the server's secret key) and their deliveries, one row per notification, kept so that a
restart neither loses nor repeats one and so that people can see what was sent and why a
delivery failed.

A delivery's ``key`` says what it notifies (``e:EVENT_ID`` for a job event, ``a:ARRAY_ID``
for a whole array, ``t:RANDOM`` for a test); it is unique per webhook, which makes writing
deliveries idempotent.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Float, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from fairpool.store.models import Base


class WebhookRow(Base):
    __tablename__ = "webhooks"
    __table_args__ = (Index("ix_webhooks_project", "project"),)

    id: Mapped[str] = mapped_column(String(16), primary_key=True)
    project: Mapped[str] = mapped_column(ForeignKey("queues.name"))
    #: the URL with most of its path left out (a Slack URL's path is its credential)
    url_hint: Mapped[str] = mapped_column(String(300))
    #: {"url": ..., "secret": ...} as JSON, sealed with the server's SecretBox
    sealed: Mapped[str] = mapped_column(Text)
    events: Mapped[list[Any]] = mapped_column()  # names of fairpool.schemas.webhooks.EVENTS
    format: Mapped[str] = mapped_column(String(8))  # json | slack
    min_wait_s: Mapped[float] = mapped_column(Float, default=60.0)
    description: Mapped[str] = mapped_column(String(200), default="")
    created_by: Mapped[str] = mapped_column(String(253))
    created_at: Mapped[float] = mapped_column(Float)


class DeliveryRow(Base):
    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        UniqueConstraint("webhook_id", "key", name="uq_webhook_deliveries_key"),
        Index("ix_webhook_deliveries_due", "status", "next_at"),
        Index("ix_webhook_deliveries_webhook", "webhook_id", "created_at"),
    )

    id: Mapped[str] = mapped_column(String(16), primary_key=True)
    webhook_id: Mapped[str] = mapped_column(ForeignKey("webhooks.id", ondelete="CASCADE"))
    key: Mapped[str] = mapped_column(String(48))
    event: Mapped[str] = mapped_column(String(16))  # finished, failed, ... or test
    job_id: Mapped[str | None] = mapped_column(String(32), nullable=True)
    array_id: Mapped[str | None] = mapped_column(String(32), nullable=True)
    body: Mapped[str] = mapped_column(Text)  # the exact bytes sent (UTF-8 JSON)
    status: Mapped[str] = mapped_column(String(16), default="pending")  # pending|delivered|failed
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_at: Mapped[float] = mapped_column(Float)  # when it is due (pending only)
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    response_code: Mapped[int | None] = mapped_column(Integer, nullable=True)
    created_at: Mapped[float] = mapped_column(Float)
    delivered_at: Mapped[float | None] = mapped_column(Float, nullable=True)
