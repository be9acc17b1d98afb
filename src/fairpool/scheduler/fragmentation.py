"""Fragmentation-aware placement of GPU fractions (``Strategy.FRAGMENTATION``): the measure of
"Beware of Fragmentation: Scheduling GPU-Sharing Workloads with Fragmentation Gradient Descent"
(Weng et al., USENIX ATC '23), as scores that :mod:`fairpool.scheduler.placement` orders its
candidate devices by.

Nomenclature:

* the *mix* (:class:`WorkloadMix`) is the workload the pool is seeing: the GPU shape of every
  worker of every job waiting or running in the snapshot, counted once per worker. A shape is a
  fraction (milli-GPUs of one device; a GPU-memory request is valued on the reference device)
  or a number of whole GPUs. It is computed once per cycle by the session.
* the *fragment* of a node for a shape is the free GPU capacity on that node that a worker of
  that shape could not use. For a fraction ``d``: the free share of every device with less than
  ``d`` free. For ``k`` whole GPUs: the free share of the partly used devices, and also the
  fully free ones when fewer than ``k`` are fully free (the node cannot take the worker at all).
* the node's *fragmentation* ``F`` is the fragment expected for a worker drawn from the mix:
  the weighted mean over the shapes. Workers without GPUs are left out: every free GPU is a
  fragment to them wherever a fraction goes, so they change no choice. CPU, memory and GPU
  memory are checked by placement (a device that does not fit is no candidate) but not scored.
* the *score* of a candidate device is the increase of its node's ``F`` when the fraction is
  placed there (fragmentation gradient descent: take the steepest descent, or least ascent).
  Placement takes the lowest score; among equal scores, bin-pack's choice.

Worked example. A node has two GPUs: A with 0.75 free, B with 0.5 free; the mix is three
workers of 0.5 and two of 0.25. A 0.25 worker is to be placed; bin-pack takes B, the least free
device it fits on.

* on B: B keeps 0.25, which a 0.5 worker cannot use: F rises by 3 × 0.25 / 5 = 0.15 GPU;
* on A: A keeps 0.5, which every worker of the mix can use: F rises by 0.

So fragmentation places it on A, and the next two 0.5 workers both fit (one on A, one on B);
after bin-pack's choice only one does.

The score needs nothing of a node but the device's free share, the share taken and, for a fully
free device, how many of the node's devices are fully free (the fragment of a fraction is a sum
over devices, and that of whole GPUs changes only with the count of fully free devices). So a
score is computed once per (free share, share) or (fully free count, share) in a cycle and kept:
the cost of a choice is one cached lookup per candidate bucket or device, whatever the size of
the cluster, and no cache ever needs undoing when a statement rolls back. Scores are integers
(milli-GPUs × workers), so ties are exact and a snapshot gives the same plan every time.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from fairpool.domain.job import Job
from fairpool.domain.resources import GPU_UNIT

#: a candidate bucket of placement: ("p", free milli-GPUs) for the partly used devices with
#: that much free, ("w", count) for the nodes with that many fully free devices
Bucket = tuple[str, int]
PARTIAL, WHOLE = "p", "w"


@dataclass(frozen=True, slots=True)
class WorkloadMix:
    """The GPU shapes of the workers a cycle sees, each with how many workers have it."""

    #: (milli-GPUs of one device, workers), by milli-GPUs
    fractions: tuple[tuple[int, int], ...] = ()
    #: (whole GPUs per worker, workers), by GPUs
    whole: tuple[tuple[int, int], ...] = ()

    @property
    def workers(self) -> int:
        return sum(w for _, w in self.fractions) + sum(w for _, w in self.whole)


def workload_mix(jobs: Iterable[Job], ref_memory: int) -> WorkloadMix:
    """The mix of ``jobs`` (the session passes those waiting and running); a GPU-memory
    request is valued in milli-GPUs of a device of ``ref_memory`` MiB."""
    fractions: dict[int, int] = {}
    whole: dict[int, int] = {}
    for job in jobs:
        req = job.request
        if req.gpus:
            whole[req.gpus] = whole.get(req.gpus, 0) + job.workers
        elif req.fractional:
            milli = min(GPU_UNIT, req.nominal(ref_memory).gpu)
            fractions[milli] = fractions.get(milli, 0) + job.workers
    return WorkloadMix(tuple(sorted(fractions.items())), tuple(sorted(whole.items())))


class Fragmentation:
    """Scores of candidate devices against one cycle's mix (cached; see the module's text)."""

    __slots__ = ("_partial", "_whole", "mix", "whole_workers")

    def __init__(self, mix: WorkloadMix) -> None:
        self.mix = mix
        self.whole_workers = sum(w for _, w in mix.whole)
        self._partial: dict[tuple[int, int], int] = {}
        self._whole: dict[tuple[int, int], int] = {}

    # -- the measure -------------------------------------------------------------------------
    def _device_fragment(self, free: int) -> int:
        """Σ over the fraction shapes of workers × the part of ``free`` they cannot use."""
        return sum(w for d, w in self.mix.fractions if free < d) * free

    def fragmentation(self, frees: Sequence[int]) -> int:
        """A node's F × the mix's workers (milli-GPUs), from its devices' free shares."""
        partial = sum(f for f in frees if f < GPU_UNIT)
        whole = sum(1 for f in frees if f == GPU_UNIT)
        out = sum(self._device_fragment(f) for f in frees)
        for k, w in self.mix.whole:
            out += w * (partial if whole >= k else partial + whole * GPU_UNIT)
        return out

    # -- scores: the rise of F (× workers) when ``share`` is taken from one device ---------------
    def partial(self, free: int, share: int) -> int:
        """Score of a partly used device with ``free`` milli-GPUs free."""
        key = (free, share)
        got = self._partial.get(key)
        if got is None:
            left = free - share
            got = self._device_fragment(left) - self._device_fragment(free)
            got -= self.whole_workers * share  # a whole worker could not use it either way
            self._partial[key] = got
        return got

    def whole(self, whole_free: int, share: int) -> int:
        """Score of a fully free device on a node with ``whole_free`` fully free devices."""
        key = (whole_free, share)
        got = self._whole.get(key)
        if got is None:
            left = GPU_UNIT - share
            got = self._device_fragment(left)
            for k, w in self.mix.whole:
                if whole_free > k:  # it still takes k whole GPUs; the rest is a fragment
                    got += w * left
                elif whole_free == k:  # it no longer does: the node's free GPUs all are
                    got += w * (left + (whole_free - 1) * GPU_UNIT)
                else:  # it already did not: the share taken was a fragment
                    got -= w * share
            self._whole[key] = got
        return got

    def device(self, free: int, whole_free: int, share: int) -> int:
        """Score of a device with ``free`` milli-GPUs free on a node with ``whole_free`` fully
        free devices."""
        return self.whole(whole_free, share) if free == GPU_UNIT else self.partial(free, share)

    # -- candidate order ---------------------------------------------------------------------
    def order(self, partial_keys: Sequence[int], whole_keys: Sequence[int],
              share: int) -> list[Bucket]:
        """The buckets bin-pack would try (``partial_keys`` then ``whole_keys``, each in its
        order), lowest score first; equal scores keep bin-pack's order."""
        ranked = [(self.partial(k, share), i, (PARTIAL, k)) for i, k in enumerate(partial_keys)]
        base = len(ranked)
        ranked += [(self.whole(k, share), base + i, (WHOLE, k)) for i, k in enumerate(whole_keys)]
        ranked.sort()
        return [bucket for _, _, bucket in ranked]
