"""Routes of node operations (admins): cordon, uncordon, drain."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Request
from pydantic import BaseModel, Field, field_validator

from fairpool.api import guard
from fairpool.api.context import AppContext
from fairpool.api.errors import ERRORS
from fairpool.auth.rbac import Perm, Principal
from fairpool.schemas.base import Input, printable
from fairpool.schemas.nodes import NodeOut
from fairpool.services import node_ops

NodeName = Annotated[str, Path(min_length=1, max_length=253, pattern=r"^[A-Za-z0-9._:-]+$")]


class CordonSpec(Input):
    reason: Annotated[str, Field(max_length=500)] = ""

    @field_validator("reason")
    @classmethod
    def _reason(cls, text: str) -> str:
        return printable("the reason", text)  # everyone who lists the nodes sees it


class DrainOut(BaseModel):
    node: NodeOut
    jobs_moved: int


def router(ctx: AppContext) -> APIRouter:
    api = APIRouter(prefix="/api/v1/nodes", responses=ERRORS)
    admin = guard.allow(ctx, Perm.MANAGE, guard.pool())

    @api.post("/{name}/cordon", response_model=NodeOut)
    def cordon(name: NodeName, spec: CordonSpec, request: Request,
               who: Principal = admin) -> NodeOut:
        """No new work on the node; what runs there stays."""
        out = node_ops.cordon(ctx.store, name, who.user, spec.reason,
                              address=guard.address(request))
        ctx.wake()
        return out

    @api.post("/{name}/uncordon", response_model=NodeOut)
    def uncordon(name: NodeName, request: Request, who: Principal = admin) -> NodeOut:
        out = node_ops.uncordon(ctx.store, name, who.user, address=guard.address(request))
        ctx.wake()
        return out

    @api.post("/{name}/drain", response_model=DrainOut)
    def drain(name: NodeName, request: Request, who: Principal = admin) -> DrainOut:
        """Cordon the node and requeue its jobs (SIGTERM, the grace period, then SIGKILL)."""
        node, moved = node_ops.drain(ctx.store, name, who.user, address=guard.address(request))
        ctx.wake()
        return DrainOut(node=node, jobs_moved=moved)

    return api
