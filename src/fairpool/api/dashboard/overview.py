"""The overview's model: every node's devices as tiles, each split among the jobs holding it
(whole GPUs, fractions, or another project's share, which is shown but never named)."""

from __future__ import annotations

from dataclasses import dataclass, field

from fairpool.api.dashboard.charts import fmt
from fairpool.api.dashboard.palette import Palette
from fairpool.schemas.jobs import JobOut
from fairpool.schemas.nodes import NodeOut
from fairpool.schemas.queues import QueueOut
from fairpool.services.nodes import HIDDEN


@dataclass
class Segment:
    project: str | None  # None: another project's
    job_id: str | None
    share: float  # of this GPU, 0..1
    color: str

    @property
    def label(self) -> str:
        return HIDDEN if self.project is None else self.project

    @property
    def fraction(self) -> str:
        return fmt(self.share)

    @property
    def percent(self) -> float:
        return round(self.share * 100, 2)


@dataclass
class Tile:
    index: int
    model: str
    memory_mib: int
    used: float
    segments: list[Segment]

    @property
    def free(self) -> float:
        return max(0.0, 1.0 - self.used)


@dataclass
class NodeCard:
    name: str
    pool: str
    simulated: bool
    ready: bool
    cordoned: bool
    labels: dict[str, str]
    tiles: list[Tile] = field(default_factory=list)
    isolation: str = "unknown"  # full, partial, none (as the node reported it)
    isolation_note: str = ""  # what is missing, or that jobs are not isolated

    @property
    def used(self) -> float:
        return sum(t.used for t in self.tiles)


@dataclass
class Summary:
    gpus: int
    allocated: float
    running: int
    waiting: int
    nodes: int
    simulated: bool


def _shares(jobs: list[JobOut]) -> dict[tuple[str, str, int], float]:
    """(job, node, device) → the share of that device the job holds."""
    out: dict[tuple[str, str, int], float] = {}
    for job in jobs:
        for w in job.placement:
            for d in w.devices:
                key = (job.id, w.node, d)
                out[key] = out.get(key, 0.0) + w.share
    return out


def _segments(node: str, device: int, used: float, holders: list[str],
              shares: dict[tuple[str, str, int], float], palette: Palette) -> list[Segment]:
    known: list[Segment] = []
    unknown: list[tuple[str | None, str | None]] = []
    for holder in holders:
        project: str | None = None
        job_id: str | None = None
        if holder != HIDDEN:
            project, _, job_id = holder.partition("/")
        share = None if job_id is None else shares.get((job_id, node, device))
        if share is None:
            unknown.append((project, job_id))
        else:
            known.append(Segment(project, job_id, share, palette(project)))
    rest = max(0.0, used - sum(s.share for s in known))
    for project, job_id in unknown:  # another project's, or a job that moved meanwhile
        known.append(Segment(project, job_id, rest / len(unknown), palette(project)))
    visible = sorted((s for s in known if s.project is not None),
                     key=lambda s: (s.project or "", s.job_id or ""))
    hidden = [s for s in known if s.project is None]
    if len(hidden) > 1:  # one grey block: how many jobs another project runs is not shown
        hidden = [Segment(None, None, sum(s.share for s in hidden), hidden[0].color)]
    return visible + hidden


def build(nodes: list[NodeOut], jobs: list[JobOut], queues: list[QueueOut],
          palette: Palette) -> tuple[list[NodeCard], Summary]:
    shares = _shares(jobs)
    cards = []
    for n in nodes:
        card = NodeCard(n.name, n.pool, n.simulated, n.ready, n.cordoned, dict(n.labels))
        if n.isolation is not None:
            card.isolation = n.isolation.level
            card.isolation_note = ("jobs run as the server's account and are not isolated "
                                   "from one another" if n.isolation.level == "none" else
                                   "; ".join(n.isolation.missing))
        for d in n.devices:
            card.tiles.append(Tile(d.index, d.model, d.memory_mib, d.used,
                                   _segments(n.name, d.index, d.used, d.holders, shares,
                                             palette)))
        cards.append(card)
    projects = [q for q in queues if q.kind == "project"]
    summary = Summary(
        gpus=sum(len(c.tiles) for c in cards),
        allocated=sum(c.used for c in cards),
        running=sum(q.running_jobs for q in projects),
        waiting=sum(q.pending_jobs for q in projects),
        nodes=len(cards),
        simulated=any(c.simulated for c in cards),
    )
    return cards, summary
