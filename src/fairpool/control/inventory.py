"""Writing an executor's inventory into the store: nodes that joined or changed, nodes gone
(marked not ready), and nodes gone long enough that nothing holds them (deleted: on Ray, a node
that comes back is a new node)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from fairpool.domain.states import HOLDING_VALUES
from fairpool.executors.base import NodeInfo
from fairpool.store.db import Store
from fairpool.store.models import JobRow, NodeRow


def write_inventory(store: Store, current: list[NodeInfo], now: float, forget_after_s: float
                    ) -> None:
    infos = {n.name: n for n in current}
    with store.writing() as s:
        changed = False
        rows = {r.name: r for r in s.execute(select(NodeRow)).scalars()}
        for name, info in infos.items():
            devices = [{"index": d.index, "memory_mib": d.memory_mib, "model": d.model,
                        "uuid": d.uuid} for d in info.devices]
            row = rows.get(name)
            if row is None:
                row = NodeRow(name=name, updated_at=now, cordoned=False)
                s.add(row)
            values: dict[str, Any] = {
                "pool": info.pool, "labels": dict(info.labels), "devices": devices,
                "cpu": info.cpu, "memory": info.memory, "simulated": info.simulated,
                "address": info.address, "ready": True,
                "isolation": None if info.isolation is None else dict(info.isolation),
            }
            differs = {k: v for k, v in values.items() if getattr(row, k, None) != v}
            for key, value in differs.items():
                setattr(row, key, value)
            if differs:
                row.updated_at = now
                changed = True
        gone = [row for name, row in rows.items() if name not in infos]
        for row in gone:
            if row.ready:
                row.ready, row.updated_at = False, now
                changed = True
        old = [row for row in gone if now - row.updated_at >= forget_after_s]
        if old:  # read from the store: the control loop's view may not be loaded yet
            held = {w["node"] for (placement,) in s.execute(
                        select(JobRow.placement).where(JobRow.state.in_(HOLDING_VALUES)))
                    for w in placement or ()}
            for row in old:
                if row.name not in held:
                    s.delete(row)
                    changed = True
        if changed:
            Store.bump(s)
