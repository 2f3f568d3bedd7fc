"""What each `scaler` command does: one library call per command, given parsed arguments.

scaler.cli declares the commands and their flags and translates errors; each function here reads
the parsed arguments, calls the library (the spec, the plan, the executors, the store, the
analysis) and prints. Library errors about their own arguments are re-spelled as this command's
flags (`_in_flags`). Heavy modules are imported inside the command that needs them, so
`scaler --help` stays instant.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager

from scaler.errors import ArgumentError, SpecError
from scaler.layout import EXPERIMENT_NAME, Layout, default_results_root


def _layout(args: argparse.Namespace, experiment: str) -> Layout:
    if not re.match(EXPERIMENT_NAME, experiment):
        raise SpecError(
            "command line",
            "experiment",
            f"{experiment!r} is not a valid experiment name (letters, digits, . _ -)",
        )
    return Layout.for_experiment(
        experiment, getattr(args, "results", None) or default_results_root()
    )


def _existing_layout(args: argparse.Namespace) -> Layout:
    layout = _layout(args, args.experiment)
    if not layout.database.is_file():
        raise SpecError(
            "command line",
            "experiment",
            f"no results at {layout.database}; run `scaler run SPEC` first",
        )
    return layout


@contextmanager
def _in_flags(flags: Mapping[str, str]) -> Iterator[None]:
    """A library's errors about its arguments (scaler.errors.ArgumentError) re-spelled as this
    command's: from the command line, each keyword named by its flag."""
    try:
        yield
    except ArgumentError as error:
        raise error.spelled("command line", flags) from None


def _load(args: argparse.Namespace):
    from scaler.spec.load import load_spec

    with _in_flags({}):  # an override is named as typed: `sizes=[1,`
        spec = load_spec(args.spec, args.overrides)
    return spec, _layout(args, spec.experiment)


def plan(args: argparse.Namespace) -> None:
    from scaler.cost_view import price
    from scaler.plan import expand
    from scaler.status import describe_plan

    spec, layout = _load(args)
    steps = expand(spec)
    cost = price(spec, steps)
    print(describe_plan(steps, layout, source=str(args.spec), list_steps=args.steps, cost=cost))


def run(args: argparse.Namespace) -> None:
    from scaler.run.experiment import run_experiment

    if args.suggested is not None:
        from scaler.suggest import suggested_overrides

        spec, layout = _load(args)
        args.overrides = [*args.overrides, *suggested_overrides(layout, args.suggested)]
    spec, layout = _load(args)
    with _in_flags({"parallel": "--parallel", "detach": "--detach"}):
        run_experiment(
            spec,
            layout,
            executor=args.executor,
            parallel=args.parallel,
            detach=args.detach,
            wait=args.wait,
        )


def suggest(args: argparse.Namespace) -> None:
    from scaler.suggest import describe, previous_suggestions, saved_spec, suggest, until

    layout = _existing_layout(args)
    if args.n < 1:
        raise SpecError("command line", "-n", f"expected a number >= 1, got {args.n}")
    for flag in ("budget", "until"):
        value = getattr(args, flag)
        if value is not None and not value > 0:
            raise SpecError("command line", f"--{flag}", f"expected a number > 0, got {value}")
    if args.until is not None:
        from scaler.run.experiment import run_experiment

        def run_with(overrides: list[str]) -> None:
            run_experiment(saved_spec(layout, overrides), layout)

        print(until(layout, args.target, args.until, budget_hours=args.budget, run=run_with))
        return
    previous = previous_suggestions(layout)
    found = suggest(layout, args.target, budget_hours=args.budget, n=args.n)
    print(describe(found, layout, previous))


def status(args: argparse.Namespace) -> None:
    from scaler.errors import Terminated
    from scaler.status import experiment_status, watch_status

    layout = _layout(args, args.experiment)
    if not layout.spec_file.is_file():
        raise SpecError(
            "command line", "experiment", f"no run at {layout.root}; run `scaler run SPEC` first"
        )
    if not args.watch:
        print(experiment_status(layout))
        return
    try:
        watch_status(layout)
    except KeyboardInterrupt as interrupt:
        if isinstance(interrupt, Terminated):  # a kill says so, as for every command
            raise
        # Ctrl-C is how watching ends: nothing was interrupted but the watching itself.


def cancel(args: argparse.Namespace) -> None:
    from scaler.slurm.cluster import Slurm
    from scaler.slurm.follow import cancel_experiment
    from scaler.slurm.records import submitted_tasks

    layout = _layout(args, args.experiment)
    if not submitted_tasks(layout):
        print(f"nothing to cancel: no Slurm jobs were submitted for {args.experiment}")
        return
    steps, jobs = cancel_experiment(layout, Slurm(layout.slurm_logs))
    print(f"cancelled {steps} queued or running steps in {len(jobs)} jobs: {' '.join(jobs)}")


def collect(args: argparse.Namespace) -> None:
    from scaler.store import collect

    layout = _layout(args, args.experiment)
    if not layout.steps.is_dir():
        raise SpecError("command line", "experiment", f"no steps under {layout.steps}")
    print(collect(layout, rebuild=args.rebuild).line())


def query(args: argparse.Namespace) -> None:
    from scaler.store import query
    from scaler.text import format_table

    with _in_flags({}):
        columns, rows = query(_existing_layout(args), args.sql)
    print(format_table(columns, rows))


_ANALYSIS_SETTINGS = (
    "eval_set", "metric", "baseline", "form", "sizes", "resamples", "confidence", "seed"
)  # fmt: skip


def _analysis_overrides(args: argparse.Namespace) -> dict:
    return {name: getattr(args, name, None) for name in _ANALYSIS_SETTINGS}


# The analysis names its arguments as keywords (analysis.errors); these are the flags they are
# given by here, so its errors name what the user typed.
_ANALYSIS_FLAGS = {
    "path": "--points",
    "higher_is_better": "--direction",
    "higher_is_better=True": "--direction higher",
    "higher_is_better=False": "--direction lower",
    "scale": "--scale",
    "eval_size": "--eval-size",
    **{name: f"--{name.replace('_', '-')}" for name in _ANALYSIS_SETTINGS},
}


def _experiment(args: argparse.Namespace):
    from analysis.experiment import Experiment

    return Experiment(_existing_layout(args))


def fit(args: argparse.Namespace) -> None:
    import json

    from analysis.summary import render_text

    with _in_flags(_ANALYSIS_FLAGS):
        if args.points is not None:
            result = _fit_points(args)
        else:
            if args.experiment is None:
                raise SpecError("command line", "experiment", "give an experiment or --points FILE")
            for flag in ("direction", "eval_size"):
                if getattr(args, flag) is not None:
                    raise SpecError(
                        "command line", f"--{flag.replace('_', '-')}", "only with --points"
                    )
            result = _experiment(args).analyse(**_analysis_overrides(args))
    print(json.dumps(result.to_dict(), indent=1) if args.json else render_text(result))


def _fit_points(args: argparse.Namespace):
    from analysis.experiment import analyse_csv

    if args.experiment is not None:
        raise SpecError("command line", "--points", "give an experiment or --points, not both")
    if args.direction is None:
        raise SpecError(
            "command line",
            "--direction",
            "say which way the metric improves: higher (a score in [0, 1]) or lower (an error)",
        )
    if not 0 < args.scale < float("inf") or (args.eval_size is not None and args.eval_size < 1):
        raise SpecError("command line", "--scale/--eval-size", "expected values > 0")
    return analyse_csv(
        args.points,
        higher_is_better=args.direction == "higher",
        scale=args.scale,
        eval_size=args.eval_size,
        **_analysis_overrides(args),
    )


def plot(args: argparse.Namespace) -> None:
    with _in_flags(_ANALYSIS_FLAGS):
        experiment = _experiment(args)
        result = experiment.analyse(**_analysis_overrides(args))
        paths = experiment.plot(result, facet=args.facet)
    for path in paths:
        print(f"wrote {path}")


def report(args: argparse.Namespace) -> None:
    with _in_flags(_ANALYSIS_FLAGS):
        experiment = _experiment(args)
        path = experiment.report(experiment.analyse(**_analysis_overrides(args)), out=args.out)
    print(f"wrote {path}")


def verify(args: argparse.Namespace) -> None:
    import json

    from runners.judging.equivalence import Verifier
    from scaler.verify_file import verify_file

    if args.time_limit <= 0 or args.workers < 1:
        raise SpecError("command line", "--time-limit/--workers", "expected values > 0")
    if (args.jsonl is None) == (args.gold is None or args.pred is None) or (
        args.jsonl is not None and args.gold is not None
    ):
        raise SpecError("command line", "verify", "give either GOLD PRED or --jsonl FILE")
    with Verifier(time_limit=args.time_limit, workers=args.workers) as verifier:
        if args.jsonl is None:
            verdict = verifier.verify(args.gold, args.pred)
            word = "correct" if verdict.correct else "incorrect"
            print(f"{word} {verdict.reason} extracted={verdict.extracted} rule={verdict.rule}")
            return
        with _in_flags({"path": "--jsonl"}):
            checked = verify_file(args.jsonl, verifier)
    for number, problem in checked.bad_lines:
        print(f"scaler: {args.jsonl}: line {number}: {problem}", file=sys.stderr)
    for verdict_record in checked.verdicts:
        print(json.dumps(verdict_record))
    if checked.bad_lines:
        print(f"scaler: {args.jsonl}: {len(checked.bad_lines)} bad lines skipped", file=sys.stderr)
