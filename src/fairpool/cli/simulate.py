"""``fairpool simulate``: replay a trace through the scheduling core under several policies and
print the metrics (a Rich table, or JSON keyed by policy), optionally with PNG plots."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from fairpool.cli.common import WideOpt
from fairpool.cli.output import Col, emit_value, fail, show, show_err, table
from fairpool.domain.words import plural

#: Rows of the table: metric key, heading (with the unit, so that the cells are numbers alone),
#: format.
ROWS = (
    ("avg_jct_s", "avg JCT (s)", "{:,.0f}"),
    ("p50_jct_s", "p50 JCT (s)", "{:,.0f}"),
    ("p99_jct_s", "p99 JCT (s)", "{:,.0f}"),
    ("avg_queue_s", "avg first wait (s)", "{:,.0f}"),
    ("avg_wait_total_s", "avg time waiting (s)", "{:,.0f}"),
    ("makespan_s", "makespan (s)", "{:,.0f}"),
    ("utilisation", "GPU utilisation", "{:.1%}"),
    ("evictions", "evictions", "{:,}"),
    ("lost_gpu_hours", "GPU-hours lost", "{:,.1f}"),
    ("guarantee_violation_s", "time below quota (s)", "{:,.0f}"),
    ("jain_index", "Jain's index", "{:.3f}"),
    ("unfinished", "jobs never run", "{:,}"),
    ("wall_s", "simulation took (s)", "{:.1f}"),
)


#: the prefix of a trace argument that names a generated workload
GENERATED = "generated:"


def simulate(
    trace: Annotated[Path, typer.Argument(help=(
        "a CSV trace (generic, Philly, Pollux, ITP), or generated:NAME for a synthetic "
        "workload (fraction-heavy, gang-heavy, skewed-tenants)"))],
    gpus: Annotated[int, typer.Option(help="GPUs in the simulated cluster", min=1)] = 64,
    gpus_per_node: Annotated[int, typer.Option(help="GPUs per node", min=1)] = 8,
    policy: Annotated[str, typer.Option(
        help="default (fifo, sjf, las, strict-quota, fairpool), all (with fairpool's "
             "variants: fairpool-attained, -decay, -backfill, -fragmentation), or a "
             "comma-separated list of policies")] = "default",
    checkpoint_min: Annotated[float, typer.Option(
        help="minutes between checkpoints: an evicted job loses the work since its last one",
        min=0.001)] = 30.0,
    quotas: Annotated[Path | None, typer.Option(
        help="YAML file of project quotas (default: by share of GPU-hours)")] = None,
    limit: Annotated[int | None, typer.Option(help="only the first N jobs", min=1)] = None,
    json_out: Annotated[bool, typer.Option("--json", help="print JSON keyed by policy")] = False,
    plot: Annotated[Path | None, typer.Option(help="write PNG plots into this folder")] = None,
    seed: Annotated[int, typer.Option(help="generated workloads: the random seed")] = 0,
    wide: WideOpt = False,
) -> None:
    """Replay TRACE through the real scheduling core and compare policies."""
    from fairpool.simulate.engine import ClusterSpec, Simulation
    from fairpool.simulate.metrics import summarize
    from fairpool.simulate.policies import POLICIES, policy_names
    from fairpool.simulate.traces import load_trace

    try:
        names = policy_names(policy)
        if str(trace).startswith(GENERATED):
            from fairpool.simulate.workloads import generate, preset

            if quotas is not None:
                raise ValueError("a generated workload has its own quotas: leave out --quotas")
            knobs: dict[str, object] = {"gpus": gpus, "gpus_per_node": gpus_per_node,
                                        "seed": seed}
            if limit is not None:
                knobs["jobs"] = limit
            loaded = generate(preset(str(trace).removeprefix(GENERATED), **knobs))
        else:
            loaded = load_trace(trace, gpus=gpus, quota_file=quotas, limit=limit,
                                gpus_per_node=gpus_per_node)
        cluster = ClusterSpec(gpus, gpus_per_node)
        cluster.nodes()
    except (ValueError, OSError) as exc:
        fail(str(exc))
    for note in loaded.notes:  # on stderr, so that --json output stays clean
        show_err(f"note: {note}")
    if plot is not None:
        try:
            plot.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            fail(f"cannot write plots to {plot}: {exc.strerror or exc}")
    results = {}
    summaries: dict[str, dict[str, float | int]] = {}
    for name in names:
        if not json_out:
            show_err(f"simulating {name} ({_jobs(len(loaded.jobs))} on "
                     f"{plural(gpus, 'GPU')})…")
        result = Simulation(loaded, POLICIES[name], cluster,
                            checkpoint_s=checkpoint_min * 60).run()
        results[name] = result
        summary = dict(summarize(result))
        summary["unfinished"] = sum(1 for j in result.jobs if j.finish_s is None)
        summaries[name] = summary
    written: list[Path] = []
    if plot is not None:
        from fairpool.simulate.plots import plot_all

        try:
            written = plot_all(results, plot)
        except OSError as exc:
            fail(f"cannot write plots to {plot}: {exc.strerror or exc}")
    if json_out:
        emit_value(summaries)
        return
    # one column per policy: the five of the default fit a terminal, all of them do not
    table(f"{loaded.name}: {_jobs(len(loaded.jobs))}, {plural(gpus, 'GPU')} ({gpus_per_node} "
          f"per node), checkpoints every {checkpoint_min:g} min",
          [Col("metric", "wrap"), *(Col(name, "num") for name in summaries)],
          [[heading, *(fmt.format(s.get(key, 0)) for s in summaries.values())]
           for key, heading, fmt in ROWS], wide=wide)
    for path in written:
        show(f"plot: {path}")


def _jobs(count: int) -> str:
    return plural(count, "job", shown=f"{count:,}")
