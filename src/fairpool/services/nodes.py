"""Nodes and devices, with who holds what."""

from __future__ import annotations

from sqlalchemy import select

from fairpool.domain import GPU_UNIT
from fairpool.domain.resources import CPU_UNIT
from fairpool.domain.states import HOLDING_VALUES
from fairpool.schemas.nodes import DeviceOut, NodeOut
from fairpool.services.views import isolation_out
from fairpool.store.db import Store
from fairpool.store.models import JobRow, NodeRow

#: the holding states as stored (domain/states.py's set; the dashboard imports it from here)


HIDDEN = "(another project)"


def list_nodes(store: Store, within: set[str] | None = None) -> list[NodeOut]:
    """Nodes and devices with their holders; holders outside ``within`` (the projects the
    caller may see; None: all) are shown only as another project's."""
    with store.session() as s:
        nodes = s.execute(select(NodeRow).order_by(NodeRow.name)).scalars().all()
        jobs = s.execute(select(JobRow.id, JobRow.project, JobRow.placement)
                         .where(JobRow.state.in_(HOLDING_VALUES))).all()
    held: dict[tuple[str, int], list[tuple[str, int]]] = {}
    for job_id, project, placement in jobs:
        for w in placement or ():
            for d in w["devices"]:
                who = f"{project}/{job_id}" if within is None or project in within else HIDDEN
                held.setdefault((w["node"], d), []).append((who, w["share"]))
    out = []
    for n in nodes:
        devices = []
        for d in n.devices:
            holders = held.get((n.name, d["index"]), [])
            devices.append(DeviceOut(
                index=d["index"], model=d["model"], memory_mib=d["memory_mib"],
                used=sum(share for _, share in holders) / GPU_UNIT,
                holders=[h for h, _ in holders],
            ))
        out.append(NodeOut(
            name=n.name, pool=n.pool, labels=dict(n.labels), simulated=n.simulated,
            ready=n.ready, cordoned=n.cordoned, cordon_until=n.cordon_until,
            cordon_reason=n.cordon_reason, cpus=n.cpu / CPU_UNIT, memory_mib=n.memory,
            devices=devices, isolation=isolation_out(n),
        ))
    return out
