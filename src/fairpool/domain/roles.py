"""The roles a subject can be bound to on a scope; what each may do is ``fairpool.auth.rbac``'s
business."""

from __future__ import annotations

from enum import StrEnum


class Role(StrEnum):
    ADMIN = "admin"
    DEPARTMENT_ADMIN = "department-admin"
    RESEARCHER = "researcher"
    VIEWER = "viewer"
