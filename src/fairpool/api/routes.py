"""Routers: authorise (a guard dependency), validate, call one service function, map the
result. Nothing else lives here."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Request

from fairpool.api import guard
from fairpool.api.context import AppContext
from fairpool.api.errors import ERRORS
from fairpool.auth.rbac import Perm, Principal
from fairpool.schemas.nodes import NodeOut
from fairpool.schemas.queues import ProjectCreate, QueueCreate, QueueOut, QueueUpdate
from fairpool.services import nodes, queues
from fairpool.services.scopes import queue_paths

JobId = Annotated[str, Path(pattern=r"^[0-9a-f]{12}$", description="job id")]
QueueName = Annotated[str, Path(pattern=r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")]


def visible_queues(ctx: AppContext, who: Principal) -> set[str] | None:
    """Queues the caller may read; None: all of them."""
    if who.sees(("*",)):
        return None
    return {name for name, path in queue_paths(ctx.store).items() if who.sees(path)}


def allowed_queues(ctx: AppContext, who: Principal, perm: Perm) -> set[str] | None:
    """Queues on which the caller holds ``perm``; None: all of them."""
    if who.allowed(perm, ("*",)):
        return None
    return {name for name, path in queue_paths(ctx.store).items() if who.allowed(perm, path)}


def router(ctx: AppContext) -> APIRouter:
    api = APIRouter(prefix="/api/v1", responses=ERRORS)
    signed_in = guard.signed_in(ctx)
    manage_pool = guard.allow(ctx, Perm.MANAGE, guard.pool())
    manage_department = guard.allow(ctx, Perm.MANAGE,
                                    guard.queue_in_body("department", "department"))
    manage_parent = guard.allow(ctx, Perm.MANAGE, guard.queue_param(parent=True))

    @api.post("/departments", status_code=201, response_model=QueueOut)
    def create_department(spec: QueueCreate, request: Request,
                          who: Principal = manage_pool) -> QueueOut:
        return queues.create_department(ctx.store, spec, who.user, guard.address(request))

    @api.post("/projects", status_code=201, response_model=QueueOut)
    def create_project(spec: ProjectCreate, request: Request,
                       who: Principal = manage_department) -> QueueOut:
        return queues.create_project(ctx.store, spec, who.user, guard.address(request))

    @api.patch("/queues/{name}", response_model=QueueOut)
    def update_queue(name: QueueName, spec: QueueUpdate, request: Request,
                     who: Principal = manage_parent) -> QueueOut:
        out = queues.update_queue(ctx.store, name, spec, who.user, guard.address(request))
        ctx.wake()
        return out

    @api.delete("/queues/{name}", status_code=204)
    def delete_queue(name: QueueName, request: Request, who: Principal = manage_parent) -> None:
        """An empty project (no live job) or department (no project); 409 says what is
        left. Its finished jobs and usage stay; a create of the same name revives it."""
        queues.delete_queue(ctx.store, name, who.user, guard.address(request))
        ctx.auth.forget()  # its role bindings went with it
        ctx.wake()

    @api.get("/queues", response_model=list[QueueOut])
    def list_queues(who: Principal = signed_in) -> list[QueueOut]:
        only = visible_queues(ctx, who)
        return [q for q in queues.list_queues(ctx.store) if only is None or q.name in only]

    @api.get("/queues/{name}", response_model=QueueOut,
             dependencies=[guard.allow(ctx, Perm.READ, guard.queue_param())])
    def get_queue(name: QueueName) -> QueueOut:
        return queues.queue_status(ctx.store, name)

    @api.get("/nodes", response_model=list[NodeOut])
    def list_nodes(who: Principal = signed_in) -> list[NodeOut]:
        return nodes.list_nodes(ctx.store, within=visible_queues(ctx, who))

    return api
