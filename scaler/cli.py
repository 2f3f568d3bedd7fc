"""The `scaler` command: plan, run, status, cancel, collect, query, fit, plot, report, verify.

The library raises; this module translates. A ScalerError becomes one line on stderr and its exit
code (2 for bad input, with nothing written); the traceback only with --verbose. Heavy modules
are imported inside the command that needs them, so `scaler --help` stays instant.
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import sys
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path

from scaler.errors import ArgumentError, ScalerError, SpecError
from scaler.layout import EXPERIMENT_NAME, Layout, default_results_root


def _interrupt(signum, frame) -> None:
    raise KeyboardInterrupt


def main(argv: Sequence[str] | None = None) -> None:
    # A `kill` stops the run like Ctrl-C does: running local jobs are cancelled, nothing is lost.
    signal.signal(signal.SIGTERM, _interrupt)
    parser = _parser()
    args, extra = parser.parse_known_args(argv)
    # Overrides may also come after options: `scaler run spec.yaml --executor local seeds=[0]`.
    if extra and hasattr(args, "overrides") and not any(e.startswith("-") for e in extra):
        args.overrides += extra
    elif extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    try:
        args.command(args)
    except ScalerError as error:
        if getattr(args, "verbose", False):
            raise
        print(f"scaler: error: {error}", file=sys.stderr)
        sys.exit(error.exit_code)
    except KeyboardInterrupt:
        print("scaler: interrupted; run the same command again to finish", file=sys.stderr)
        sys.exit(130)
    except BrokenPipeError:
        # `scaler plan ... | head`: the reader left; say nothing more (Python's recipe).
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(1)


def _parser() -> argparse.ArgumentParser:
    # Long (about 170 lines) on purpose: every command and flag declared in one place, in the
    # order `scaler --help` lists them; each command's handler below is one library call.
    #
    # Accepted before and after the command. SUPPRESS keeps a subcommand's unset default from
    # overwriting a value given before it (`scaler --results DIR query ...`).
    common = argparse.ArgumentParser(add_help=False, argument_default=argparse.SUPPRESS)
    common.add_argument(
        "--results", type=Path, help="results root (default: $SCALER_RESULTS or ./results)"
    )
    common.add_argument("-v", "--verbose", action="store_true", help="show tracebacks")

    parser = argparse.ArgumentParser(
        prog="scaler",
        parents=[common],
        description="Declarative scaling-law experiments: plan, run, collect, query, fit, plot.",
    )
    commands = parser.add_subparsers(required=True, metavar="COMMAND")

    def command(name: str, handler, help: str) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, parents=[common], help=help, description=help)
        sub.set_defaults(command=handler)
        return sub

    def spec_args(sub: argparse.ArgumentParser) -> None:
        sub.add_argument("spec", type=Path, help="the experiment's YAML spec")
        sub.add_argument(
            "overrides",
            nargs="*",
            metavar="key=value",
            help="overrides of spec values, e.g. sizes=[100,200] seeds=[0]",
        )

    def experiment_arg(sub: argparse.ArgumentParser) -> None:
        sub.add_argument("experiment", help="experiment name (a folder under the results root)")

    sub = command("plan", _plan, "Show the steps a spec expands to and which are done.")
    spec_args(sub)
    sub.add_argument("--steps", action="store_true", help="list every step, not only per stage")

    sub = command("run", _run, "Run the steps of a spec that are not done, then collect.")
    spec_args(sub)
    sub.add_argument(
        "--executor",
        choices=["inline", "local", "slurm"],
        default=None,
        help="where steps run (default: the spec's executor.name)",
    )
    sub.add_argument(
        "--parallel",
        type=int,
        default=None,
        help="steps at once for the local executor (default: executor.parallel)",
    )
    sub.add_argument(
        "--detach",
        action="store_true",
        help="slurm: submit the whole DAG, print the job ids and return (see `scaler status`)",
    )

    sub = command(
        "status", _status, "Where an experiment stands: steps done, running, queued, failed."
    )
    experiment_arg(sub)

    sub = command("cancel", _cancel, "Cancel an experiment's queued and running Slurm jobs.")
    experiment_arg(sub)

    sub = command(
        "collect", _collect, "Load finished steps into results/<experiment>/scaler.duckdb."
    )
    experiment_arg(sub)

    sub = command("query", _query, "Run SQL on an experiment's DuckDB (read-only).")
    experiment_arg(sub)
    sub.add_argument("sql", help='e.g. "SELECT size, avg(accuracy) FROM evals GROUP BY size"')

    def analysis_args(sub: argparse.ArgumentParser) -> None:
        # None: the spec's analysis section (or its defaults) decides.
        sub.add_argument("--eval-set", help="eval set to fit (default: analysis.eval_set, test)")
        sub.add_argument(
            "--metric",
            choices=["accuracy", "pass_at_k", "maj_at_k"],
            help="score fitted as error 1 - score (default: analysis.metric, accuracy)",
        )
        sub.add_argument(
            "--baseline", help="arm the multipliers are over, e.g. teacher:sft (default: sft)"
        )
        sub.add_argument(
            "--form",
            choices=["power", "power_e0", "log_linear", "shared"],
            help="form the multipliers use (default: power, E + A*D^-alpha; shared: each arm "
            "fitted with its baseline, E + A*(m*D)^-alpha, m a parameter)",
        )
        sub.add_argument(
            "--sizes",
            type=_sizes,
            nargs="?",
            const="",  # `--sizes -5,100`: argparse takes -5,100 for an option; _sizes says so
            metavar="SIZES",
            help="sizes for the multipliers, e.g. 1000,4000 (default: grid)",
        )
        sub.add_argument("--resamples", type=int, help="bootstrap resamples (default: 1000)")
        sub.add_argument("--confidence", type=float, help="interval level (default: 0.9)")
        sub.add_argument("--seed", type=int, help="seed of the bootstrap draws (default: 0)")

    sub = command(
        "fit",
        _fit,
        "Fit every arm (power law, E = 0, log-linear) with bootstrap intervals and print the "
        "effective data multipliers; saved into the experiment's DuckDB.",
    )
    sub.add_argument("experiment", nargs="?", help="experiment name (or give --points)")
    analysis_args(sub)
    sub.add_argument(
        "--points",
        type=Path,
        help="fit a CSV of points instead: columns arm, size, value, optional seed",
    )
    sub.add_argument(
        "--direction",
        choices=["higher", "lower"],
        help="with --points: higher (a score in [0, 1], fitted as 1 - score) or lower (an error)",
    )
    sub.add_argument("--scale", type=float, default=1.0, help="with --points: divide values by")
    sub.add_argument(
        "--eval-size",
        type=int,
        help="with --points: problems behind each value, for binomial resampling of scores",
    )
    sub.add_argument("--json", action="store_true", help="print the analysis as JSON")

    sub = command(
        "plot",
        _plot,
        "Write scaling curves (bands, intervals), multipliers and facets as PNG and SVG.",
    )
    experiment_arg(sub)
    analysis_args(sub)
    sub.add_argument(
        "--facet",
        choices=["source", "model", "algorithm"],
        help="also draw one panel per source/model/algorithm (default: source, when several)",
    )

    sub = command(
        "report",
        _report,
        "Write one self-contained HTML page: spec, plan, figures, fits, multipliers, provenance.",
    )
    experiment_arg(sub)
    analysis_args(sub)
    sub.add_argument("--out", type=Path, help="where (default: results/<experiment>/report.html)")

    sub = command(
        "verify",
        _verify,
        "Check final answers: GOLD PRED, or --jsonl FILE of {gold, pred} records.",
    )
    sub.add_argument("gold", nargs="?", help="the gold answer, e.g. '\\frac{1}{2}'")
    sub.add_argument("pred", nargs="?", help="the prediction: an answer or a whole solution")
    sub.add_argument("--jsonl", type=Path, help="records with `gold` and `pred`; JSON lines out")
    sub.add_argument(
        "--time-limit", type=float, default=2.0, help="seconds per comparison (default: 2)"
    )
    sub.add_argument("--workers", type=int, default=2, help="worker processes (default: 2)")
    return parser


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


def _plan(args: argparse.Namespace) -> None:
    from scaler.plan import expand
    from scaler.status import describe_plan

    spec, layout = _load(args)
    print(describe_plan(expand(spec), layout, source=str(args.spec), list_steps=args.steps))


def _run(args: argparse.Namespace) -> None:
    from scaler.run.experiment import run_experiment

    spec, layout = _load(args)
    with _in_flags({"parallel": "--parallel", "detach": "--detach"}):
        run_experiment(
            spec, layout, executor=args.executor, parallel=args.parallel, detach=args.detach
        )


def _status(args: argparse.Namespace) -> None:
    from scaler.status import experiment_status

    layout = _layout(args, args.experiment)
    if not layout.spec_file.is_file():
        raise SpecError(
            "command line", "experiment", f"no run at {layout.root}; run `scaler run SPEC` first"
        )
    print(experiment_status(layout))


def _cancel(args: argparse.Namespace) -> None:
    from scaler.slurm.cluster import Slurm
    from scaler.slurm.follow import cancel_experiment
    from scaler.slurm.records import submitted_tasks

    layout = _layout(args, args.experiment)
    if not submitted_tasks(layout):
        print(f"nothing to cancel: no Slurm jobs were submitted for {args.experiment}")
        return
    steps, jobs = cancel_experiment(layout, Slurm(layout.slurm_logs))
    print(f"cancelled {steps} queued or running steps in {len(jobs)} jobs: {' '.join(jobs)}")


def _collect(args: argparse.Namespace) -> None:
    from scaler.store import collect

    layout = _layout(args, args.experiment)
    if not layout.steps.is_dir():
        raise SpecError("command line", "experiment", f"no steps under {layout.steps}")
    result = collect(layout)
    print(f"collected {result.loaded} new steps into {result.database} ({result.total} in all)")


def _query(args: argparse.Namespace) -> None:
    import duckdb

    from scaler.store import query
    from scaler.text import format_table

    layout = _existing_layout(args)
    try:
        columns, rows = query(layout, args.sql)
    except duckdb.Error as error:
        raise SpecError("command line", "sql", str(error).splitlines()[0]) from None
    print(format_table(columns, rows))


def _sizes(text: str) -> list[int]:
    """`--sizes 1000,4000,1e12` -> [1000, 4000, 10**12]: positive whole numbers, as
    AnalysisSettings.sizes are, written any way float() reads (2.5e3 is 2500).

    A bad list is one line and exit 2 like every other input error rather than argparse's usage
    text, so this reports it itself (argparse runs it before the command's error handling).
    """
    sizes: list[int] = []
    # No text: the option's const, so no value, or one argparse read as an option (`-5,100`).
    problem = None if text else "got none (a value that starts with '-' is read as an option)"
    for part in text.split(",") if text else ():
        try:
            size = float(part)
        except ValueError:
            size = float("nan")
        if not 0 < size < float("inf"):
            problem = f"got {text!r}"
            break
        if not size.is_integer():
            problem = f"got {text!r}: {part.strip()} is not a whole number of problems"
            break
        sizes.append(int(size))
    if problem is not None:
        error = SpecError(
            "command line", "--sizes", f"expected positive sizes like 1000,4000; {problem}"
        )
        print(f"scaler: error: {error}", file=sys.stderr)
        sys.exit(2)
    return sizes


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


def _fit(args: argparse.Namespace) -> None:
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


def _plot(args: argparse.Namespace) -> None:
    with _in_flags(_ANALYSIS_FLAGS):
        experiment = _experiment(args)
        result = experiment.analyse(**_analysis_overrides(args))
        paths = experiment.plot(result, facet=args.facet)
    for path in paths:
        print(f"wrote {path}")


def _report(args: argparse.Namespace) -> None:
    with _in_flags(_ANALYSIS_FLAGS):
        experiment = _experiment(args)
        path = experiment.report(experiment.analyse(**_analysis_overrides(args)), out=args.out)
    print(f"wrote {path}")


def _verify(args: argparse.Namespace) -> None:
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


if __name__ == "__main__":
    main()
