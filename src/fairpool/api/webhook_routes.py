"""Routes of per-project webhooks: create (the secret is in this answer only), list, delete,
list a webhook's deliveries, send it a test notification. Only the project's managers (a
department admin of its department, or an admin) reach them."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Request
from starlette.concurrency import run_in_threadpool

from fairpool.api import guard
from fairpool.api.context import AppContext
from fairpool.api.errors import ERRORS
from fairpool.auth.rbac import Perm, Principal
from fairpool.schemas.webhooks import (
    WEBHOOK_ID,
    DeliveryOut,
    DeliveryStatus,
    WebhookCreate,
    WebhookCreated,
    WebhookOut,
)
from fairpool.services import webhooks

ProjectName = Annotated[str, Path(pattern=r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")]
WebhookId = Annotated[str, Path(pattern=WEBHOOK_ID)]


def router(ctx: AppContext) -> APIRouter:
    api = APIRouter(prefix="/api/v1/projects/{project}/webhooks", responses=ERRORS,
                    tags=["webhooks"])
    managers = guard.allow(ctx, Perm.MANAGE, guard.queue_param("project"))

    @api.post("", status_code=201, response_model=WebhookCreated)
    async def create_webhook(project: ProjectName, spec: WebhookCreate, request: Request,
                             who: Principal = managers) -> WebhookCreated:
        return await run_in_threadpool(webhooks.create, ctx.store, ctx.box, ctx.webhooks,
                                       who.user, project, spec, guard.address(request))

    @api.get("", response_model=list[WebhookOut], dependencies=[managers])
    def list_webhooks(project: ProjectName) -> list[WebhookOut]:
        return webhooks.list_webhooks(ctx.store, project)

    @api.delete("/{webhook_id}", response_model=WebhookOut)
    def delete_webhook(project: ProjectName, webhook_id: WebhookId, request: Request,
                       who: Principal = managers) -> WebhookOut:
        return webhooks.remove(ctx.store, who.user, project, webhook_id,
                               guard.address(request))

    @api.get("/{webhook_id}/deliveries", response_model=list[DeliveryOut],
             dependencies=[managers])
    def list_deliveries(project: ProjectName, webhook_id: WebhookId,
                        status: DeliveryStatus | None = None,
                        limit: Annotated[int, Query(ge=1, le=1000)] = 50) -> list[DeliveryOut]:
        return webhooks.deliveries(ctx.store, project, webhook_id, status, limit)

    @api.post("/{webhook_id}/test", response_model=DeliveryOut)
    def test_webhook(project: ProjectName, webhook_id: WebhookId, request: Request,
                     who: Principal = managers) -> DeliveryOut:
        return webhooks.send_test(ctx.store, ctx.box, ctx.webhooks, who.user, project,
                                  webhook_id, guard.address(request))

    return api
