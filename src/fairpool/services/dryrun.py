"""A dry run of a submission: every check a submit makes, then one scheduling cycle on the pool
as it is now with the job added, so the answer to "would it start, and where?" is the
scheduler's own (quotas, fair share, reclaim and preemption included). Nothing is written."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from fairpool.domain.dependencies import Verdict
from fairpool.domain.words import plural
from fairpool.scheduler import Scheduler, SchedulerConfig
from fairpool.schemas.arrays import ArraySubmit, DryRunOut
from fairpool.schemas.jobs import JobSubmit
from fairpool.services import submission as sub
from fairpool.services.errors import Invalid
from fairpool.services.estimates import live_snapshot
from fairpool.services.queues import queue_status
from fairpool.store.convert import job_domain
from fairpool.store.db import Store
from fairpool.store.models import JobRow


def dry_run(store: Store, spec: JobSubmit, *, actor: str = "system",
            mount_roots: Sequence[Path] | None = None, within: set[str] | None = None,
            config: SchedulerConfig | None = None) -> DryRunOut:
    sub.check_mounts(spec, mount_roots)
    pclass = sub.priority_class(spec)
    tasks = len(spec.index_list()) if isinstance(spec, ArraySubmit) else 1
    now = time.time()
    with store.session() as s:
        project = sub.project_row(s, spec.project)
        needs, decision = sub.check_dependencies(s, spec, within)
        values = sub.row_values(spec, pclass, project, actor, now, "", needs, decision)
        request = JobSubmit.model_validate({
            **spec.model_dump(include=set(JobSubmit.model_fields)),
            "priority": pclass.name, "preemptible": values["preemptible"],
            "max_runtime_s": values["max_runtime_s"]})
        try:
            sub.check_fits(store, s, spec)
            sub.check_quota(store, s, spec, pclass, project)
        except Invalid as exc:
            return DryRunOut(request=request, tasks=tasks, fits=False, nodes=[],
                             quota=_quota(store, spec.project),
                             message=f"would be refused: {exc.message}")
        pool = live_snapshot(s, now)
    hypothetical = job_domain(JobRow(**values))
    plan = Scheduler(config).cycle(replace(pool, jobs=(*pool.jobs, hypothetical)))
    bind = next((b for b in plan.binds if b.job_id == hypothetical.id), None)
    placed = sorted({p.node for p in bind.placements}) if bind is not None else []
    if bind is not None:
        evicted = [e for e in plan.evictions if e.for_job == hypothetical.id]
        message = f"would start now on {', '.join(placed)}" + (
            f", after stopping {len(evicted)} job" + ("s" if len(evicted) > 1 else "") +
            f" ({evicted[0].action})" if evicted else "")
    else:
        why = plan.pending.get(hypothetical.id)
        message = "would wait: " + (why.message if why is not None else
                                    "for the next scheduling cycle")
    if decision is not None and decision.verdict == Verdict.WAIT:
        message = f"would wait for its dependencies ({decision.text}); then it {message}"
    if tasks > 1:
        message += f" (checked for one of its {tasks} tasks)"
    return DryRunOut(request=request, tasks=tasks, fits=bind is not None, nodes=placed,
                     quota=_quota(store, spec.project), message=message)


def _quota(store: Store, project: str) -> str:
    q = queue_status(store, project)
    fair = "" if q.fair_share is None else f", fair share {q.fair_share.gpus:g}"
    limit = "" if q.limit is None or q.limit.gpus is None else f", limit {q.limit.gpus:g}"
    return (f"project {project}: quota {plural(q.quota.gpus, 'GPU')}{limit}{fair}; holds "
            f"{q.allocated.gpus:g} now with {q.running_jobs} running and {q.pending_jobs} "
            "waiting")
