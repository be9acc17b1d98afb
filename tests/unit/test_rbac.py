"""Roles and scopes (pure): what each binding allows where, who may grant what, and the token
format."""

from __future__ import annotations

from fairpool.auth import tokens
from fairpool.auth.rbac import Binding, Perm, Principal, may_grant, subjects_of
from fairpool.domain.roles import Role

POOL = ("*",)
D1 = ("*", "d1")
P1 = ("*", "d1", "p1")
P1B = ("*", "d1", "p1b")
P2 = ("*", "d2", "p2")


def who(*bindings: tuple[Role, str]) -> Principal:
    return Principal("u", tuple(Binding(r, s) for r, s in bindings))


def test_a_binding_covers_its_scope_and_below_only() -> None:
    rita = who((Role.RESEARCHER, "p1"))
    assert rita.allowed(Perm.SUBMIT, P1) and rita.allowed(Perm.SECRETS, P1)
    assert not rita.sees(P1B) and not rita.sees(P2) and not rita.sees(D1)
    assert not rita.allowed(Perm.MANAGE, P1) and not rita.is_admin
    dora = who((Role.DEPARTMENT_ADMIN, "d1"))
    assert all(dora.allowed(p, path) for p in (Perm.READ, Perm.SUBMIT, Perm.MANAGE)
               for path in (D1, P1, P1B))
    assert not dora.sees(P2) and not dora.allowed(Perm.MANAGE, POOL)
    vic = who((Role.VIEWER, "*"))
    assert vic.sees(P2) and vic.sees(D1) and not vic.allowed(Perm.CANCEL, P1)
    admin = who((Role.ADMIN, "*"))
    assert admin.is_admin and all(admin.allowed(p, P2) for p in Perm)
    assert not who().sees(P1)


def test_who_may_grant_what() -> None:
    admin, dora = who((Role.ADMIN, "*")), who((Role.DEPARTMENT_ADMIN, "d1"))
    rita = who((Role.RESEARCHER, "p1"))
    assert may_grant(admin, Role.ADMIN, POOL)
    assert may_grant(dora, Role.RESEARCHER, P1) and may_grant(dora, Role.VIEWER, D1)
    assert not may_grant(dora, Role.DEPARTMENT_ADMIN, D1)
    assert not may_grant(dora, Role.RESEARCHER, P2)
    assert not may_grant(rita, Role.VIEWER, P1)


def test_group_subjects() -> None:
    assert subjects_of("erin", ("ml", "ops")) == ("erin", "group:ml", "group:ops")


def test_token_format_and_hash() -> None:
    made = tokens.mint()
    assert tokens.parse(made.value) == (made.id, made.secret)
    assert tokens.matches(made.salt, made.hash, made.secret)
    assert not tokens.matches(made.salt, made.hash, made.secret[:-1] + "x")
    assert made.secret not in made.hash and len({tokens.mint().salt for _ in range(5)}) == 5
    for bad in ("", "fp_", made.value + "x", made.value[:-1], "xx" + made.value[2:],
                made.value.replace("_", "-")):
        assert tokens.parse(bad) is None
