"""The `scaler` command: plan, run, status, cancel, collect, query, fit, plot, report, verify.

Every command and flag is declared here, and each command's work is one function of
scaler.commands. The library raises; this module translates: a ScalerError becomes one line on
stderr and its exit code (2 for bad input, with nothing written); the traceback only with
--verbose. Heavy modules are imported inside the command that needs them, so `scaler --help`
stays instant.
"""

from __future__ import annotations

import argparse
import errno
import os
import signal
import sys
from collections.abc import Sequence
from pathlib import Path

from scaler import commands
from scaler.errors import ScalerError, SpecError, Terminated


def _terminate(signum, frame) -> None:
    raise Terminated


def main(argv: Sequence[str] | None = None) -> None:
    # A `kill` stops the run like Ctrl-C does: running local jobs are cancelled, nothing is lost.
    signal.signal(signal.SIGTERM, _terminate)
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
    except KeyboardInterrupt as interrupt:
        how = "stopped by SIGTERM" if isinstance(interrupt, Terminated) else "interrupted"
        print(f"scaler: {how}; run the same command again to finish", file=sys.stderr)
        sys.exit(143 if isinstance(interrupt, Terminated) else 130)
    except BrokenPipeError:
        # `scaler plan ... | head`: the reader left; say nothing more (Python's recipe).
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(1)
    except OSError as error:
        if error.errno != errno.ENOSPC or getattr(args, "verbose", False):
            raise
        from scaler.disk_space import disk_full

        full = disk_full(Path(error.filename or "."), str(error))
        print(f"scaler: error: {full}", file=sys.stderr)
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
    subparsers = parser.add_subparsers(required=True, metavar="COMMAND")

    def command(name: str, handler, help: str) -> argparse.ArgumentParser:
        sub = subparsers.add_parser(name, parents=[common], help=help, description=help)
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

    sub = command("plan", commands.plan, "Show the steps a spec expands to and which are done.")
    spec_args(sub)
    sub.add_argument("--steps", action="store_true", help="list every step, not only per stage")

    sub = command("run", commands.run, "Run the steps of a spec that are not done, then collect.")
    spec_args(sub)
    sub.add_argument(
        "--executor",
        choices=["inline", "local", "warm", "slurm"],
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
    sub.add_argument(
        "--wait",
        action="store_true",
        help="if another run of this experiment is going, wait for it to end (default: exit 2)",
    )

    sub.add_argument(
        "--suggested",
        type=int,
        nargs="?",
        const=1,
        metavar="K",
        help="with the overrides of suggestion K (default 1) that `scaler suggest` saved last",
    )

    sub = command(
        "suggest",
        commands.suggest,
        "Rank what to run next by how much it narrows a target's interval per hour of compute.",
    )
    experiment_arg(sub)
    sub.add_argument(
        "--target",
        help="multiplier:ARM@SIZE, multiplier:ARM (at the largest size) or exponent:ARM "
        "(default: the first arm with a baseline, at the largest size)",
    )
    sub.add_argument("--budget", type=float, help="hours (GPU-h, or CPU-h on CPUs) to spend")
    sub.add_argument("-n", type=int, default=5, help="suggestions shown (default 5)")
    sub.add_argument(
        "--until",
        type=float,
        metavar="WIDTH",
        help="run the first suggestion, collect and suggest again until the interval is "
        "narrower than WIDTH (a multiplier's high/low, an exponent's high - low) or the "
        "budget is spent",
    )

    sub = command(
        "status",
        commands.status,
        "Where an experiment stands: steps done, running, queued, failed.",
    )
    experiment_arg(sub)
    sub.add_argument(
        "--watch",
        action="store_true",
        help="show the live progress (steps per stage, each running step's progress, an ETA) "
        "until nothing runs or is queued; Ctrl-C stops watching",
    )

    sub = command(
        "cancel", commands.cancel, "Cancel an experiment's queued and running Slurm jobs."
    )
    experiment_arg(sub)

    sub = command(
        "collect", commands.collect, "Load finished steps into results/<experiment>/scaler.duckdb."
    )
    experiment_arg(sub)
    sub.add_argument(
        "--rebuild",
        action="store_true",
        help="move the database aside and load every step folder again",
    )

    sub = command("query", commands.query, "Run SQL on an experiment's DuckDB (read-only).")
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
        commands.fit,
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
        commands.plot,
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
        commands.report,
        "Write one self-contained HTML page: spec, plan, figures, fits, multipliers, provenance.",
    )
    experiment_arg(sub)
    analysis_args(sub)
    sub.add_argument("--out", type=Path, help="where (default: results/<experiment>/report.html)")

    sub = command(
        "verify",
        commands.verify,
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


if __name__ == "__main__":
    main()
