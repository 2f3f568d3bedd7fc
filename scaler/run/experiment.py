"""`scaler run` as a library call: run what a spec's grid still needs, where it says, then collect.

    run_experiment(load_spec("specs/demo.yaml"), Layout.for_experiment("demo"))

The steps that are not done run with the inline or local executor (scaler.run.local) or on
Slurm (scaler.slurm.follow); either way the resolved spec is saved as the experiment's
spec.json, with the index of its steps that `scaler status` reads (scaler.step_index), and
what finished is collected into its DuckDB, also when some steps failed (then RunFailed is
raised after collecting). A step a Slurm job still
holds is never run here as well.
"""

from __future__ import annotations

from collections.abc import Callable

from scaler.errors import ArgumentError, RunFailed, SubmissionError
from scaler.fingerprint import content_hash
from scaler.layout import Layout
from scaler.manifest import repair_damaged
from scaler.plan import Plan, expand
from scaler.run.locks import experiment_lock
from scaler.run.outcome import RunReport
from scaler.spec.schema import Spec
from scaler.step_index import save_spec

EXECUTORS = ("inline", "local", "warm", "slurm")
ARGUMENTS = "run_experiment"
"""The source of an error in an argument of run_experiment; the CLI says its flags instead."""


def run_experiment(
    spec: Spec,
    layout: Layout,
    *,
    executor: str | None = None,
    parallel: int | None = None,
    detach: bool = False,
    wait: bool = False,
    say: Callable[[str], None] = print,
) -> RunReport | None:
    """Run the steps of `spec` that are not done and collect them; return what ran (None when
    `detach`ed: the Slurm jobs were submitted and are left to run).

    `executor` (inline, local or slurm) and `parallel` (steps at once, local) default to the
    spec's executor section; raises RunFailed, after collecting, when some step failed.
    One run of an experiment at a time (scaler.run.locks): while another holds it this raises
    ExperimentBusy, or with `wait` waits for it.
    """
    if parallel is not None and parallel < 1:
        raise ArgumentError(ARGUMENTS, "parallel", f"expected a number >= 1, got {parallel}")
    name = executor or spec.executor.name
    if name not in EXECUTORS:
        raise ArgumentError(ARGUMENTS, "executor", f"unknown {name!r}; expected one of {EXECUTORS}")
    if detach and name != "slurm":
        raise ArgumentError(ARGUMENTS, "detach", "only the slurm executor runs detached")
    plan = expand(spec)
    with experiment_lock(layout, wait=wait, say=say):
        return _run_locked(spec, plan, layout, name, parallel=parallel, detach=detach, say=say)


def _run_locked(
    spec: Spec,
    plan: Plan,
    layout: Layout,
    name: str,
    *,
    parallel: int | None,
    detach: bool,
    say: Callable[[str], None],
) -> RunReport | None:
    spec_json = spec.model_dump(mode="json")
    spec_hash = content_hash(spec_json)
    for step_name, reason in repair_damaged(layout):
        say(f"repairing {step_name}: {reason}; it runs again")
    done = layout.done_names()
    if all(step.name in done for step in plan.steps):
        say(f"nothing to run: all {len(plan.steps)} steps of {spec.experiment} are done")
        # The spec may differ in what does not change a step (its analysis: section).
        save_spec(layout, spec, plan)
        report = RunReport(already_done=len(plan.steps))
    elif name == "slurm":
        from scaler.slurm.follow import run_on_slurm

        followed = run_on_slurm(plan, layout, spec, spec_hash, detach=detach, say=say)
        if followed is None:  # detached: the jobs are queued, nothing to collect yet
            return None
        report = followed
    else:
        from scaler.run.local import execute, make_executor

        refuse_if_queued_on_slurm(layout)
        save_spec(layout, spec, plan)
        runner = make_executor(name, layout.logs, parallel or spec.executor.parallel)
        report = execute(
            plan, layout, runner, spec_hash=spec_hash, retries=spec.executor.retries, say=say
        )
        say(f"ran {len(report.ran)} steps ({report.already_done} were done)")
    _collect(layout, say)  # also when steps failed: what did finish is queryable
    if report.failed:
        raise RunFailed(report.failed)
    return report


def refuse_if_queued_on_slurm(layout: Layout) -> None:
    """Never run a step here while a Slurm job holds it."""
    from scaler.slurm.cluster import Slurm, missing_commands
    from scaler.slurm.records import queued_steps

    if missing_commands():
        return
    queued = queued_steps(layout, Slurm(layout.slurm_logs))  # no records: no squeue call
    if queued:
        raise SubmissionError(
            f"{len(queued)} steps of {layout.root.name} are queued or running on Slurm; wait "
            f"(scaler status {layout.root.name}) or cancel them (scaler cancel "
            f"{layout.root.name}) before running them elsewhere"
        )


def _collect(layout: Layout, say: Callable[[str], None]) -> None:
    from scaler.store import collect  # duckdb: only once there is something to load

    say(collect(layout).line())
