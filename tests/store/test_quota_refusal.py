"""A job that cannot be preempted runs only within quota: one that alone asks for more than
its project's or its department's quota is refused at submit, with what to change, instead of
waiting for ever (SQLite and PostgreSQL)."""

from __future__ import annotations

import pytest

from fairpool.schemas.arrays import ArraySubmit
from fairpool.schemas.jobs import JobSubmit
from fairpool.schemas.queues import ProjectCreate, QueueCreate, ResourceSpec
from fairpool.services import arrays, dryrun, jobs, queues
from fairpool.services.errors import Invalid
from fairpool.store.db import Store


def _queues(store: Store) -> None:
    queues.create_department(store, QueueCreate(name="research", quota=ResourceSpec(
        gpus=3, cpus=8, memory_mib=16384)))
    queues.create_project(store, ProjectCreate(name="vision", department="research",
                                               quota=ResourceSpec(gpus=2, cpus=4,
                                                                  memory_mib=8192)))
    # more than its department: the department's quota is the one that binds
    queues.create_project(store, ProjectCreate(name="big", department="research",
                                               quota=ResourceSpec(gpus=8), over_commit=True))


def _submit(store: Store, **kw: object) -> None:
    jobs.submit(store, JobSubmit.model_validate({"project": "vision", "command": ["true"], **kw}))


def test_a_non_preemptible_job_above_its_projects_quota_is_refused(store: Store) -> None:
    _queues(store)
    with pytest.raises(Invalid) as refused:
        _submit(store, priority="build", gpus=3)
    assert refused.value.message == (
        "a build job cannot be preempted, so it runs only within quota: it needs 3 GPUs and "
        "project vision's quota is 2 GPUs; ask for less, have the quota raised (`fairpool "
        "project set-quota vision --quota-gpus 3`), or submit it preemptible (--priority "
        "train)")
    with pytest.raises(Invalid, match="it needs 4 GPUs and project vision's quota is 2 GPUs"):
        _submit(store, priority="inference", gpus=2, workers=2)
    with pytest.raises(Invalid, match="a non-preemptible job cannot be preempted"):
        _submit(store, gpus=3, preemptible=False)
    _submit(store, priority="build", gpus=2)  # within quota: queued
    _submit(store, priority="build", gpu_fraction=0.5, workers=4)
    _submit(store, gpus=3)  # preemptible: it may borrow


def test_the_departments_quota_holds_too(store: Store) -> None:
    _queues(store)
    with pytest.raises(Invalid, match=r"it needs 4 GPUs and department research's quota is "
                                      r"3 GPUs.*department set-quota research --quota-gpus 4"):
        jobs.submit(store, JobSubmit(project="big", command=["true"], priority="build",
                                     gpus=4))
    jobs.submit(store, JobSubmit(project="big", command=["true"], priority="build", gpus=3))


def test_jobs_without_gpus_are_held_to_cpu_and_memory_quotas(store: Store) -> None:
    _queues(store)
    with pytest.raises(Invalid, match="it needs 6 CPUs and project vision's quota is 4 CPUs"):
        _submit(store, priority="build", cpus=3, workers=2)
    with pytest.raises(Invalid, match=r"it needs 9000 MiB .* quota is 8192 MiB.*--quota-memory"):
        _submit(store, priority="build", memory_mib=9000)
    _submit(store, priority="build", cpus=4, memory_mib=8192)
    _submit(store, priority="build", gpus=1, cpus=64)  # a GPU job: its GPUs are what count


def test_arrays_and_dry_runs_say_the_same(store: Store) -> None:
    _queues(store)
    spec = ArraySubmit(project="vision", command=["true"], priority="build", gpus=3,
                       indices="0-9")
    with pytest.raises(Invalid, match="project vision's quota is 2 GPUs"):
        arrays.submit_array(store, spec)
    out = dryrun.dry_run(store, spec)
    assert not out.fits and out.message.startswith("would be refused: a build job cannot be "
                                                   "preempted"), out.message
    assert jobs.list_jobs(store, project="vision") == []
