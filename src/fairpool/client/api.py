"""The Python client: one method per REST operation, typed results, one error type.

    from fairpool.client import Client
    c = Client()     # URL and token from FAIRPOOL_URL/FAIRPOOL_TOKEN or the client config
    job = c.submit(project="vision", command=["python", "train.py"], gpus=1)
    print(c.explain(job.id).reason)
    done = c.wait(job.id, timeout=3600)          # TimeoutError if it takes longer
    tasks = c.submit_array(project="vision", command=["python", "train.py"],
                           indices="0-99", max_running=10)

The job operations (submit, arrays, dependencies, cancel, wait, logs) are in
``fairpool.client.jobs``, the connection in ``fairpool.client.http``; this module adds queues,
nodes, reports and access.
"""

from __future__ import annotations

from typing import Any

from pydantic import TypeAdapter

from fairpool.client.handle import Job
from fairpool.client.http import JOB_ID, FairpoolError, build, segment, tls_context
from fairpool.client.jobs import JobsApi, LogPage
from fairpool.schemas.access import (
    AccountOut,
    AccountSet,
    AuditOut,
    BindingCreate,
    BindingOut,
    SecretOut,
    SecretSet,
    TokenCreate,
    TokenCreated,
    TokenOut,
    UserOut,
    WhoAmI,
)
from fairpool.schemas.nodes import NodeOut
from fairpool.schemas.queues import ProjectCreate, QueueCreate, QueueOut, QueueUpdate
from fairpool.schemas.usage import UsageOut

__all__ = ["JOB_ID", "Client", "FairpoolError", "Job", "LogPage", "build", "tls_context"]


class Client(JobsApi):
    """A connection to one pool (see the module); use it as a context manager or ``close`` it."""

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    # -- queues -----------------------------------------------------------------------------
    def create_department(self, spec: QueueCreate) -> QueueOut:
        return self._send("POST", "/api/v1/departments", spec, QueueOut)

    def create_project(self, spec: ProjectCreate) -> QueueOut:
        return self._send("POST", "/api/v1/projects", spec, QueueOut)

    def update_queue(self, name: str, spec: QueueUpdate) -> QueueOut:
        return self._send("PATCH", f"/api/v1/queues/{name}", spec, QueueOut)

    def delete_queue(self, name: str) -> None:
        """Delete an empty project or department (refused while it has live jobs or projects)."""
        self._request("DELETE", f"/api/v1/queues/{segment(name)}")

    def queues(self) -> list[QueueOut]:
        return self._get("/api/v1/queues", list[QueueOut])

    # -- nodes ------------------------------------------------------------------------------
    def nodes(self) -> list[NodeOut]:
        return self._get("/api/v1/nodes", list[NodeOut])

    def cordon(self, node: str, reason: str = "") -> NodeOut:
        return TypeAdapter(NodeOut).validate_python(self._request(
            "POST", f"/api/v1/nodes/{node}/cordon", json={"reason": reason}).json())

    def uncordon(self, node: str) -> NodeOut:
        return self._send("POST", f"/api/v1/nodes/{node}/uncordon", None, NodeOut)

    def drain(self, node: str) -> tuple[NodeOut, int]:
        data = self._request("POST", f"/api/v1/nodes/{node}/drain").json()
        return NodeOut.model_validate(data["node"]), int(data["jobs_moved"])

    def health(self) -> dict[str, str]:
        return self._get("/health", dict[str, str])

    # -- reports ----------------------------------------------------------------------------
    @staticmethod
    def _range(start: float | None, end: float | None, **params: Any) -> dict[str, Any]:
        bounds = {"from": start, "to": end}
        return {**params, **{k: v for k, v in bounds.items() if v is not None}}

    def usage(self, start: float | None = None, end: float | None = None,
              by: str = "project") -> list[UsageOut]:
        return self._get("/api/v1/usage", list[UsageOut], params=self._range(start, end, by=by))

    def usage_csv(self, start: float | None = None, end: float | None = None,
                  by: str = "project") -> str:
        return self._request("GET", "/api/v1/usage",
                             params=self._range(start, end, by=by, format="csv")).text

    def metrics(self) -> str:
        return self._request("GET", "/metrics").text

    # -- access -----------------------------------------------------------------------------
    def whoami(self) -> WhoAmI:
        return self._get("/api/v1/whoami", WhoAmI)

    def create_token(self, user: str, expires_in_s: float | None = 90 * 86400,
                     description: str = "") -> TokenCreated:
        spec = build(TokenCreate, user=user, expires_in_s=expires_in_s, description=description)
        data = self._request("POST", "/api/v1/tokens",
                             json=spec.model_dump(mode="json")).json()
        return TokenCreated.model_validate(data)

    def tokens(self) -> list[TokenOut]:
        return self._get("/api/v1/tokens", list[TokenOut])

    def revoke_token(self, token_id: str) -> TokenOut:
        return self._send("DELETE", f"/api/v1/tokens/{token_id}", None, TokenOut)

    def grant(self, subject: str, role: str, scope: str) -> BindingOut:
        spec = build(BindingCreate, subject=subject, role=role, scope=scope)
        return self._send("POST", "/api/v1/role-bindings", spec, BindingOut)

    def role_bindings(self) -> list[BindingOut]:
        return self._get("/api/v1/role-bindings", list[BindingOut])

    def revoke_binding(self, binding_id: int) -> BindingOut:
        return self._send("DELETE", f"/api/v1/role-bindings/{binding_id}", None, BindingOut)

    def audit(self, **filters: Any) -> list[AuditOut]:
        params = {k: v for k, v in filters.items() if v is not None}
        return self._get("/api/v1/audit", list[AuditOut], params=params)

    def map_account(self, user: str, account: str) -> AccountOut:
        """Run ``user``'s jobs as Unix account ``account`` (admins; run_as = user)."""
        return self._send("PUT", f"/api/v1/accounts/{segment(user)}",
                          build(AccountSet, account=account), AccountOut)

    def unmap_account(self, user: str) -> AccountOut:
        return self._send("DELETE", f"/api/v1/accounts/{segment(user)}", None, AccountOut)

    def accounts(self) -> list[AccountOut]:
        return self._get("/api/v1/accounts", list[AccountOut])

    def disable_user(self, user: str) -> UserOut:
        """Disable ``user`` and revoke its tokens (admins)."""
        return self._send("POST", f"/api/v1/users/{segment(user)}/disable", None, UserOut)

    def enable_user(self, user: str) -> UserOut:
        return self._send("POST", f"/api/v1/users/{segment(user)}/enable", None, UserOut)

    def disabled_users(self) -> list[UserOut]:
        return self._get("/api/v1/users/disabled", list[UserOut])

    def set_secret(self, project: str, name: str, value: str) -> SecretOut:
        return self._send("PUT", f"/api/v1/projects/{project}/secrets/{name}",
                          build(SecretSet, value=value), SecretOut)

    def secrets(self, project: str) -> list[SecretOut]:
        return self._get(f"/api/v1/projects/{project}/secrets", list[SecretOut])

    def delete_secret(self, project: str, name: str) -> SecretOut:
        return self._send("DELETE", f"/api/v1/projects/{project}/secrets/{name}", None,
                          SecretOut)
