"""Every public trace and the generated workloads through the simulator, every policy, and the
check issue 19 asks for on each row.

    python benchmarks/simulate_all.py [--only NAME,...] [--skip NAME,...] [--policies all]
        [--quick] [--workers 1] [--cache DIR] [--markdown PATH] [--list]

Rows (``--list`` prints them). Each source is simulated twice: at its documented cluster size,
and on a cluster 1.5× as loaded, the documented GPUs / 1.5 rounded to whole nodes (row name
``…-x1.5``; ``load_vs_documented`` holds the exact factor the rounding gives):

- every CSV under the traces folder (``--traces``, default ``../shared/traces``) at the size
  its README documents (:data:`DOCUMENTED`): ``philly.csv`` on the "shared pool with quotas"
  setting (96 × 8 GPUs, quotas from ``configs/philly-helios.yaml`` scaled to the cluster; the
  setting of docs/results/philly-768), the Pollux workloads on 16 × 4 GPUs (durations assumed
  by the loader, see ``fairpool.simulate.traces``), the ElasticFlow/ITP files on 64 × 8 or
  32 × 8. A CSV the README does not size gets ``fairpool simulate``'s default, 64 GPUs of 8 per
  node, and says so in ``size_source``. ``sample_generic.csv`` is left out: it is 200 jobs taken
  from ``philly.csv``, not a distinct trace (``skipped_traces`` says so).
- the generated presets fraction-heavy, gang-heavy and skewed-tenants
  (``fairpool.simulate.workloads``, seed 0) at their own size (64 GPUs of 8 per node); the
  1.5× row draws the same jobs and arrival times (the knob ``load`` rescaled to the smaller
  cluster) with the quotas the generator gives the smaller cluster.

Quotas of traces without a quota file are each project's share of GPU-hours at the row's size
(the loader's rule), so they always sum to the cluster.

Policies: every entry of ``fairpool.simulate.policies.POLICIES`` at run time (``--policies``
narrows it). The check, per row, of the default policy ``fairpool``:

- ``within_5pct_of_best_jct``: its average JCT is at most 1.05 × the best average JCT of the
  policies that finished the most jobs (an average over fewer finished jobs is not comparable;
  if ``fairpool`` itself finished fewer, the check fails).
- ``least_below_quota``: its time below guaranteed quota (``guarantee_violation_s``) is the
  least of the policies that lend idle GPUs. A policy lends when its config has ``lend_idle``
  or it puts every job in one queue (fifo, sjf, las: one queue owns the whole cluster, so every
  idle GPU goes to whoever waits); strict-quota does neither.
- ``overall`` holds both over all checked rows and lists the rows that fail.

Output: one JSON object on stdout (progress on stderr): ``rows`` keyed by row name, each with
its cluster, trace facts (``jobs``, ``offered_load`` = GPU-seconds asked / (GPUs × arrival
span), ``notes``), ``policies`` (per policy ``fairpool.simulate.metrics.summarize`` plus
``unfinished``) and ``check``, and ``estimate``: the start-time estimate's accuracy by replay
(:func:`fairpool.simulate.metrics.estimate_accuracy`): in the default policy's run, every
``len(jobs) // ESTIMATE_SAMPLES``-th job gets the estimate ``fairpool explain`` would give at its
submit (a forecast with the projects' run times from the jobs finished so far), compared with
when it really started. ``commit`` and
``source_sha256`` (domain, scheduler and simulator sources) say which code was measured.

``--quick``: the generated workloads have 200 jobs and every trace is cut to its first 200 jobs
(a smoke test; no markdown unless ``--markdown`` is given). Otherwise the markdown tables go to
``--markdown`` (default docs/results/simulate-all.md). ``--cache DIR`` keeps each (row, policy)
result as JSON, keyed by the row, the options and the source fingerprint, so a rerun of the same
code skips what is done (the Philly rows take minutes per policy). ``--workers N`` runs
(row, policy) pairs in N processes (default 1).
"""

from __future__ import annotations

import argparse
import dataclasses
import fnmatch
import hashlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import Future, ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src"
if str(SRC) not in sys.path:  # the checkout's fairpool, in this process and in its workers
    sys.path.insert(0, str(SRC))
TRACES = Path(os.environ.get("FAIRPOOL_TRACES") or ROOT.parent / "shared" / "traces")
PHILLY_QUOTAS = SRC / "fairpool" / "simulate" / "configs" / "philly-helios.yaml"
MARKDOWN = ROOT / "docs" / "results" / "simulate-all.md"

DEFAULT_POLICY = "fairpool"
LOAD_FACTOR = 1.5
JCT_TOLERANCE = 0.05
CHECKPOINT_MIN = 30.0
QUICK_JOBS = 200
#: jobs of a row whose start-time estimate is replayed (every len(jobs) // this-th, at submit)
ESTIMATE_SAMPLES = 100
GENERATED = ("fraction-heavy", "gang-heavy", "skewed-tenants")
SEED = 0
UNDOCUMENTED = (64, 8)  # `fairpool simulate`'s default --gpus and --gpus-per-node
README = "../shared/traces/README.md"

#: trace file (relative to the traces folder) -> (GPUs, GPUs per node, quota file, where from)
DOCUMENTED: dict[str, tuple[int, int, Path | None, str]] = {
    "philly.csv": (768, 8, PHILLY_QUOTAS, f"{README}, 'Settings for fairpool's simulator "
                   "benchmarks': shared pool with quotas, 96 nodes × 8 GPUs; quotas are the "
                   "Helios VC sizes scaled from 2,816 GPUs (configs/philly-helios.yaml)"),
    **{f"pollux/{name}.csv": (64, 4, None, f"{README}, pollux/: 16 nodes × 4 GPUs")
       for name in ("workload-1", "workload-6", "workload-realistic-6")},
    "elasticflow/cluster01.csv": (512, 8, None, f"{README}, elasticflow/: cluster01 on "
                                  "64 nodes × 8 GPUs"),
    "elasticflow/cluster10.csv": (256, 8, None, f"{README}, elasticflow/: cluster10 on "
                                  "32 nodes × 8 GPUs"),
    "elasticflow/philly_103959.csv": (256, 8, None, f"{README}, elasticflow/: philly_103959 "
                                      "on 32 nodes × 8 GPUs"),
}
SKIPPED = {"sample_generic.csv": "200 jobs taken from philly.csv (README): not a distinct "
           "trace; the philly rows cover it"}

#: metric key, heading, format: the columns of the markdown tables
METRICS = (
    ("avg_jct_s", "avg JCT (s)", "{:,.0f}"),
    ("p99_jct_s", "p99 JCT (s)", "{:,.0f}"),
    ("avg_queue_s", "avg first wait (s)", "{:,.0f}"),
    ("guarantee_violation_s", "time below quota (s)", "{:,.0f}"),
    ("jain_index", "Jain's index", "{:.3f}"),
    ("evictions", "evictions", "{:,}"),
    ("lost_gpu_hours", "GPU-hours lost", "{:,.1f}"),
    ("utilisation", "GPU utilisation", "{:.1%}"),
    ("unfinished", "jobs never run", "{:,}"),
    ("wall_s", "simulation took (s)", "{:,.1f}"),
)


@dataclass(frozen=True, slots=True)
class Row:
    """One simulated setting: a trace file or a generated preset on one cluster size."""
    name: str
    kind: str  # "trace" or "generated"
    source: str  # trace path relative to the traces folder, or the preset name
    gpus: int
    gpus_per_node: int
    documented_gpus: int
    size_source: str
    quota_file: str | None = None


def smaller(gpus: int, per_node: int) -> int:
    """GPUs of the cluster that makes a load 1.5× heavier: gpus / 1.5 in whole nodes."""
    return max(1, round(gpus / LOAD_FACTOR / per_node)) * per_node


def _pair(base: Row) -> Iterator[Row]:
    yield base
    small = smaller(base.gpus, base.gpus_per_node)
    yield dataclasses.replace(base, name=f"{base.name}-x{LOAD_FACTOR:g}", gpus=small,
                              size_source=f"{LOAD_FACTOR:g}× the load of {base.name}: "
                              f"{base.gpus} / {LOAD_FACTOR:g} GPUs in whole nodes")


def all_rows(traces: Path) -> tuple[list[Row], dict[str, str]]:
    """The rows for the traces found under ``traces`` and the generated presets, and the trace
    files left out with the reason."""
    from fairpool.simulate.workloads import PRESETS

    rows: list[Row] = []
    skipped: dict[str, str] = {}
    for path in sorted(traces.rglob("*.csv")):
        rel = path.relative_to(traces).as_posix()
        if rel in SKIPPED:
            skipped[rel] = SKIPPED[rel]
            continue
        gpus, per_node, quotas, where = DOCUMENTED.get(rel, (*UNDOCUMENTED, None, (
            f"no documented size in {README}: fairpool simulate's default {UNDOCUMENTED[0]} "
            f"GPUs, {UNDOCUMENTED[1]} per node")))
        rows += _pair(Row(rel.removesuffix(".csv").replace("/", "-"), "trace", rel, gpus,
                          per_node, gpus, where, None if quotas is None else str(quotas)))
    for name in GENERATED:
        spec = PRESETS[name]
        rows += _pair(Row(f"gen-{name}", "generated", name, spec.gpus, spec.gpus_per_node,
                          spec.gpus, f"the preset's own gpus={spec.gpus}, "
                          f"gpus_per_node={spec.gpus_per_node}, seed {SEED}"))
    return rows, skipped


def select(rows: list[Row], only: str | None, skip: str | None) -> list[Row]:
    """Rows whose name matches a pattern of ``only`` (all if None) and none of ``skip``
    (comma-separated fnmatch patterns). A pattern that matches nothing is an error."""
    def patterns(spec: str | None) -> list[str]:
        return [p.strip() for p in (spec or "").split(",") if p.strip()]

    names = [r.name for r in rows]
    for pattern in patterns(only) + patterns(skip):
        if not fnmatch.filter(names, pattern):
            raise ValueError(f"no row matches {pattern!r}; the rows are {', '.join(names)}")
    keep = [r for r in rows if not patterns(only)
            or any(fnmatch.fnmatch(r.name, p) for p in patterns(only))]
    return [r for r in keep if not any(fnmatch.fnmatch(r.name, p) for p in patterns(skip))]


# --- one (row, policy) run: the workers' job -------------------------------------------------


def load(row: Row, traces: Path, quick: bool) -> Any:
    """The row's :class:`~fairpool.simulate.records.Trace`."""
    from fairpool.simulate.traces import load_trace
    from fairpool.simulate.workloads import PRESETS, generate, preset

    if row.kind == "generated":
        base = PRESETS[row.source]
        knobs: dict[str, object] = {"gpus": row.gpus, "seed": SEED,
                                    # the same arrivals on a smaller cluster: load is per GPU
                                    "load": base.load * base.gpus / row.gpus}
        if quick:
            knobs["jobs"] = QUICK_JOBS
        return generate(preset(row.source, **knobs))
    return load_trace(traces / row.source, gpus=row.gpus, quota_file=row.quota_file,
                      limit=QUICK_JOBS if quick else None, gpus_per_node=row.gpus_per_node)


def trace_facts(trace: Any, gpus: int) -> dict[str, Any]:
    """What a reader of a row needs about its jobs."""
    jobs = trace.jobs
    span = max(j.submit_s for j in jobs) - min(j.submit_s for j in jobs)
    work = sum(j.gpus * j.duration_s for j in jobs)
    return {"jobs": len(jobs), "projects": len(trace.quotas),
            "fraction_jobs": sum(1 for j in jobs if j.gpus < 1),
            "offered_load": round(work / (span * gpus), 4) if span > 0 else 0.0,
            "quota_gpus": sum(trace.quotas.values()), "notes": list(trace.notes)}


def run_one(row: Row, policy_name: str, traces: str, quick: bool) -> dict[str, Any]:
    """Simulate one policy on one row: the metrics and the row's trace facts."""
    from fairpool.simulate.engine import ClusterSpec, Simulation
    from fairpool.simulate.metrics import estimate_accuracy, summarize
    from fairpool.simulate.policies import POLICIES

    trace = load(row, Path(traces), quick)
    every = max(1, len(trace.jobs) // ESTIMATE_SAMPLES) if policy_name == DEFAULT_POLICY else 0
    result = Simulation(trace, POLICIES[policy_name], ClusterSpec(row.gpus, row.gpus_per_node),
                        checkpoint_s=CHECKPOINT_MIN * 60, estimate_every=every).run()
    metrics: dict[str, Any] = dict(summarize(result))
    metrics["unfinished"] = sum(1 for j in result.jobs if j.finish_s is None)
    out = {"metrics": metrics, "trace": trace_facts(trace, row.gpus)}
    if every:
        out["estimate"] = {**estimate_accuracy(result), "every": every}
    return out


# --- the check (pure) ------------------------------------------------------------------------


def lends(policy: Any) -> bool:
    """Whether a policy gives idle GPUs to whoever waits (see the module docstring)."""
    return bool(policy.single_queue or policy.config.lend_idle)


def check(metrics: dict[str, dict[str, Any]], lenders: list[str]) -> dict[str, Any] | None:
    """Issue 19's check of the default policy on one row; None if it cannot be made (the
    default policy was not run, or nothing to compare it with)."""
    if DEFAULT_POLICY not in metrics or len(metrics) < 2:
        return None
    mine = metrics[DEFAULT_POLICY]
    most = max(m["finished"] for m in metrics.values())
    comparable = [p for p, m in metrics.items() if m["finished"] == most]
    best = min(comparable, key=lambda p: metrics[p]["avg_jct_s"])
    best_jct = metrics[best]["avg_jct_s"]
    ratio = mine["avg_jct_s"] / best_jct if best_jct > 0 else 1.0
    within = DEFAULT_POLICY in comparable and mine["avg_jct_s"] <= (1 + JCT_TOLERANCE) * best_jct
    run_lenders = [p for p in lenders if p in metrics]
    least = min(run_lenders, key=lambda p: metrics[p]["guarantee_violation_s"])
    least_s = metrics[least]["guarantee_violation_s"]
    is_least = (DEFAULT_POLICY in run_lenders
                and mine["guarantee_violation_s"] <= least_s + 1e-9)
    return {"best_avg_jct_policy": best, "best_avg_jct_s": best_jct,
            "jct_compared": comparable, "default_jct_ratio": round(ratio, 4),
            "within_5pct_of_best_jct": within,
            "least_below_quota_policy": DEFAULT_POLICY if is_least else least,
            "least_below_quota_s": least_s, "below_quota_compared": run_lenders,
            "least_below_quota": is_least, "pass": within and is_least}


def overall(rows: dict[str, dict[str, Any]]) -> dict[str, Any]:
    checks = {n: r["check"] for n, r in rows.items() if r.get("check") is not None}
    return {"rows_checked": len(checks),
            "within_5pct_of_best_jct": all(c["within_5pct_of_best_jct"] for c in checks.values()),
            "least_below_quota": all(c["least_below_quota"] for c in checks.values()),
            "pass": bool(checks) and all(c["pass"] for c in checks.values()),
            "failing_rows": [n for n, c in checks.items() if not c["pass"]]}


# --- cache and provenance --------------------------------------------------------------------


def source_sha256() -> str:
    """A fingerprint of the code a result depends on: domain, scheduler and simulator."""
    digest = hashlib.sha256()
    for part in ("domain", "scheduler", "simulate"):
        for path in sorted((SRC / "fairpool" / part).rglob("*")):
            if path.is_file() and path.suffix in (".py", ".yaml"):
                digest.update(path.relative_to(SRC).as_posix().encode())
                digest.update(path.read_bytes())
    return digest.hexdigest()


def _git(*args: str) -> subprocess.CompletedProcess[str] | None:
    try:  # read-only: --no-optional-locks keeps git from refreshing the index
        return subprocess.run(["git", "--no-optional-locks", "-C", str(ROOT), *args],
                              capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None


def commit() -> dict[str, Any]:
    """The commit measured, and whether the sources the results depend on differ from it."""
    head = _git("rev-parse", "HEAD")
    diff = _git("diff", "--quiet", "HEAD", "--",
                *(f"src/fairpool/{p}" for p in ("domain", "scheduler", "simulate")))
    return {"commit": head.stdout.strip() or None if head and head.returncode == 0 else None,
            "source_changed_since_commit": None if diff is None or diff.returncode > 1
            else diff.returncode == 1}


def cache_key(row: Row, policy: str, quick: bool, traces: Path, source: str) -> dict[str, Any]:
    key: dict[str, Any] = {"row": dataclasses.asdict(row), "policy": policy, "quick": quick,
                           "checkpoint_min": CHECKPOINT_MIN, "source_sha256": source}
    if row.kind == "trace":
        key["trace_sha256"] = hashlib.sha256((traces / row.source).read_bytes()).hexdigest()
    return key


def cache_path(cache: Path, row: Row, policy: str) -> Path:
    return cache / row.name / f"{policy}.json"


def cached(cache: Path | None, row: Row, policy: str, key: dict[str, Any]
           ) -> dict[str, Any] | None:
    if cache is None:
        return None
    path = cache_path(cache, row, policy)
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data["result"] if isinstance(data, dict) and data.get("key") == key else None


def store(cache: Path | None, row: Row, policy: str, key: dict[str, Any],
          result: dict[str, Any]) -> None:
    if cache is None:
        return
    path = cache_path(cache, row, policy)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"key": key, "result": result}, allow_nan=False))
    tmp.replace(path)  # whole or not at all, if the run is stopped


# --- markdown --------------------------------------------------------------------------------


def _yes(value: bool) -> str:
    return "yes" if value else "**no**"


def markdown(out: dict[str, Any]) -> str:
    lines = ["# Every trace and generated workload, every policy", "",
             f"`python benchmarks/simulate_all.py` at commit `{out['commit']}`"
             f"{' with uncommitted changes' if out['source_changed_since_commit'] else ''} "
             f"(sources `{out['source_sha256'][:12]}`), {out['measured_at']}"
             f"{' (--quick)' if out['quick'] else ''}. Checkpoints every "
             f"{out['checkpoint_min']:g} min. Generated by the benchmark; see its docstring for "
             "the rows and the check.", "",
             f"Check of `{DEFAULT_POLICY}`: average JCT within {JCT_TOLERANCE:.0%} of the best, "
             "and the least time below guaranteed quota among the policies that lend idle GPUs "
             f"({', '.join(out['lenders'])}).", "",
             "| row | GPUs | load vs documented | offered load | jobs | best avg JCT | "
             f"{DEFAULT_POLICY} ÷ best | within 5% | least below quota | pass | estimate error "
             "median / p90 (s) | same, jobs that waited ≥ 1 min |",
             "|---|---:|---:|---:|---:|---|---:|---|---|---|---:|---:|"]
    for name, row in out["rows"].items():
        c = row.get("check")
        cells = ([f"{c['best_avg_jct_policy']} {c['best_avg_jct_s']:,.0f} s",
                  f"{c['default_jct_ratio']:.3f}", _yes(c["within_5pct_of_best_jct"]),
                  _yes(c["least_below_quota"]) + ("" if c["least_below_quota"]
                                                  else f" ({c['least_below_quota_policy']})"),
                  _yes(c["pass"])] if c else ["-"] * 5)
        e = row.get("estimate")
        cells += ([f"{e['median_abs_error_s']:,.0f} / {e['p90_abs_error_s']:,.0f} "
                   f"({e['compared']})",
                   f"{e['waited_median_abs_error_s']:,.0f} / {e['waited_p90_abs_error_s']:,.0f} "
                   f"({e['waited']})"] if e else ["-", "-"])
        lines.append(f"| {name} | {row['gpus']} ({row['gpus'] // row['gpus_per_node']} × "
                     f"{row['gpus_per_node']}) | {row['load_vs_documented']:.2f}× | "
                     f"{row['offered_load']:.2f} | {row['jobs']:,} | " + " | ".join(cells) + " |")
    o = out["overall"]
    lines += ["", f"Overall: {o['rows_checked']} rows checked; within 5% on every row: "
              f"{_yes(o['within_5pct_of_best_jct'])}; least below quota on every row: "
              f"{_yes(o['least_below_quota'])}; failing: {', '.join(o['failing_rows']) or 'none'}."]
    if out["skipped_traces"]:
        lines += ["", "Left out: " + "; ".join(f"`{k}`: {v}" for k, v in
                                              out["skipped_traces"].items()) + "."]
    if out.get("rows_not_run"):
        lines += ["", "Rows not run this time (`--only`/`--skip`): "
                  + ", ".join(out["rows_not_run"]) + "."]
    for name, row in out["rows"].items():
        pols = list(row["policies"])
        lines += ["", f"## {name}", "",
                  f"`{row['source']}` on {row['gpus']} GPUs ({row['gpus_per_node']} per node); "
                  f"{row['size_source']}. Jobs: {row['jobs']:,} "
                  f"({row['fraction_jobs']:,} fractional); projects: {row['projects']}; "
                  f"offered load {row['offered_load']:.2f}.",
                  "", "| metric | " + " | ".join(pols) + " |", "|---|" + "---:|" * len(pols)]
        for key, heading, fmt in METRICS:
            lines.append(f"| {heading} | " + " | ".join(
                fmt.format(row["policies"][p].get(key, 0)) for p in pols) + " |")
    return "\n".join(lines) + "\n"


# --- the run ---------------------------------------------------------------------------------


def parse(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--only", help="rows to run: comma-separated names or fnmatch patterns")
    ap.add_argument("--skip", help="rows to leave out: names or patterns (e.g. 'philly*')")
    ap.add_argument("--policies", default="all", help="all, or a comma-separated list")
    ap.add_argument("--quick", action="store_true",
                    help=f"smoke test: {QUICK_JOBS} jobs per trace and generated workload")
    ap.add_argument("--workers", type=int, default=1, help="processes (default 1)")
    ap.add_argument("--cache", type=Path, help="keep each (row, policy) result here; reuse it")
    ap.add_argument("--markdown", type=Path,
                    help=f"markdown tables here (default {MARKDOWN.relative_to(ROOT)} unless "
                    "--quick)")
    ap.add_argument("--traces", type=Path, default=TRACES, help="the traces folder")
    ap.add_argument("--list", action="store_true", help="print the row names and exit")
    args = ap.parse_args(argv)
    if args.workers < 1:
        ap.error("--workers must be at least 1")
    if not (args.traces / "README.md").is_file():
        ap.error(f"no traces folder at {args.traces} (its README.md is missing); give --traces")
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse(argv)
    from fairpool.simulate.policies import POLICIES, policy_names

    started = time.perf_counter()
    rows, skipped = all_rows(args.traces)
    try:
        every_row = [r.name for r in rows]
        rows = select(rows, args.only, args.skip)
        names = policy_names(args.policies)
    except ValueError as exc:
        sys.exit(f"simulate_all: {exc}")
    if args.list:
        print(json.dumps([r.name for r in rows]))
        return
    lenders = [p for p in names if lends(POLICIES[p])]
    source = source_sha256()
    results: dict[tuple[str, str], dict[str, Any]] = {}
    todo: list[tuple[Row, str, dict[str, Any]]] = []
    for row in rows:
        for name in names:
            key = cache_key(row, name, args.quick, args.traces, source)
            hit = cached(args.cache, row, name, key)
            if hit is None:
                todo.append((row, name, key))
            else:
                results[row.name, name] = hit
    print(f"simulate_all: {len(rows)} rows × {len(names)} policies, {len(results)} cached, "
          f"{len(todo)} to run", file=sys.stderr, flush=True)

    def done(row: Row, name: str, key: dict[str, Any], result: dict[str, Any]) -> None:
        store(args.cache, row, name, key, result)
        results[row.name, name] = result
        print(f"{row.name} {name}: {result['metrics']['wall_s']:.1f} s "
              f"({len(results)}/{len(rows) * len(names)})", file=sys.stderr, flush=True)

    if args.workers == 1:
        for row, name, key in todo:
            done(row, name, key, run_one(row, name, str(args.traces), args.quick))
    else:
        with ProcessPoolExecutor(min(args.workers, max(1, len(todo)))) as pool:
            futures: dict[Future[dict[str, Any]], tuple[Row, str, dict[str, Any]]] = {
                pool.submit(run_one, row, name, str(args.traces), args.quick): (row, name, key)
                for row, name, key in todo}
            for future in as_completed(futures):
                done(*futures[future], future.result())

    out_rows: dict[str, dict[str, Any]] = {}
    for row in rows:
        metrics = {n: results[row.name, n]["metrics"] for n in names}
        facts = results[row.name, names[0]]["trace"]
        out_rows[row.name] = {
            "kind": row.kind, "source": row.source, "gpus": row.gpus,
            "gpus_per_node": row.gpus_per_node, "documented_gpus": row.documented_gpus,
            "load_vs_documented": round(row.documented_gpus / row.gpus, 4),
            "size_source": row.size_source, **facts, "policies": metrics,
            "check": check(metrics, lenders)}
        if (row.name, DEFAULT_POLICY) in results and "estimate" in results[row.name,
                                                                          DEFAULT_POLICY]:
            out_rows[row.name]["estimate"] = results[row.name, DEFAULT_POLICY]["estimate"]
    out: dict[str, Any] = {
        "benchmark": "simulate_all", "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
        **commit(), "source_sha256": source, "quick": args.quick,
        "checkpoint_min": CHECKPOINT_MIN, "load_factor": LOAD_FACTOR,
        "jct_tolerance": JCT_TOLERANCE, "default_policy": DEFAULT_POLICY, "policies": names,
        "lenders": lenders, "traces_dir": str(args.traces), "skipped_traces": skipped,
        "rows_not_run": [n for n in every_row if n not in {r.name for r in rows}],
        "rows": out_rows, "overall": overall(out_rows),
        "wall_s": round(time.perf_counter() - started, 1)}
    target = args.markdown if args.markdown is not None or args.quick else MARKDOWN
    if target is not None:
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(markdown(out))
        print(f"simulate_all: wrote {target}", file=sys.stderr, flush=True)
    print(json.dumps(out, allow_nan=False))


if __name__ == "__main__":
    main()
