"""An experiment's results for notebooks and for the `scaler fit / plot / report` commands.

    from analysis import open_experiment
    exp = open_experiment("setlur-demo")
    exp.df("SELECT algorithm, size, avg(accuracy) FROM evals GROUP BY ALL")   # pandas
    result = exp.analyse(baseline="sft", sizes=[1000, 4000])                   # fits, CIs
    result.multipliers, exp.frames(result)["fits"]
    exp.plot(result); exp.report(result)

The analysis settings come from the spec's `analysis:` section (saved with the run in
spec.json), overridden by keyword arguments (which the command line's flags become). DuckDB has
one writer per file and a reader blocks it: `sql()` keeps a read-only connection open for the
relations it returns until `close()` (or the end of a `with` block); everything else opens and
closes its own.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from analysis.errors import ANALYSIS, ArgumentError
from analysis.points import Points, load_points
from analysis.points_csv import read_points_csv
from analysis.result import ScalingAnalysis, flat_params
from analysis.scaling import analyse
from analysis.settings import AnalysisSettings
from scaler.layout import Layout, default_results_root

if TYPE_CHECKING:
    import duckdb


def open_experiment(name: str, results: str | Path | None = None) -> Experiment:
    """The experiment ``results/<name>`` (results root: $SCALER_RESULTS or ./results)."""
    layout = Layout.for_experiment(name, Path(results) if results else default_results_root())
    if not layout.database.is_file():
        raise ArgumentError(
            ANALYSIS, "name", f"no results at {layout.database}; run `scaler run` first"
        )
    return Experiment(layout)


def settings_with(base: AnalysisSettings, overrides: dict[str, Any]) -> AnalysisSettings:
    """``base`` with the overrides that are not None, validated; a bad value is an
    ArgumentError naming the keyword."""
    given = {key: value for key, value in overrides.items() if value is not None}
    try:
        return AnalysisSettings.model_validate(base.model_dump() | given)
    except ValidationError as error:
        first = error.errors()[0]
        field = ".".join(str(part) for part in first["loc"]) or "analysis"
        raise ArgumentError(ANALYSIS, field, first["msg"]) from None


class Experiment:
    def __init__(self, layout: Layout):
        self.layout = layout
        self._con: duckdb.DuckDBPyConnection | None = None

    @property
    def name(self) -> str:
        return self.layout.root.name

    # ---- SQL -----------------------------------------------------------------------------

    def sql(self, query: str, params: list | None = None):
        """A DuckDB relation on a read-only connection kept until close()."""
        from scaler.store import connect

        if self._con is None:
            self._con = connect(self.layout, read_only=True)
        return self._con.sql(query, params=params)

    def df(self, query: str, params: list | None = None):
        """The result of ``query`` as a pandas DataFrame."""
        from scaler.store import connect

        con = self._con or connect(self.layout, read_only=True)
        try:
            return con.execute(query, params).df()
        finally:
            if con is not self._con:
                con.close()

    def table(self, name: str):
        """A whole table or view (evals, eval_problems, data_metrics, fits, multipliers, ...)."""
        return self.df(f'SELECT * FROM "{name}"')

    def close(self) -> None:
        if self._con is not None:
            self._con.close()
            self._con = None

    def __enter__(self) -> Experiment:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- Analysis ------------------------------------------------------------------------

    def spec_settings(self) -> AnalysisSettings:
        """The spec's `analysis:` section, or the defaults for a run saved without one."""
        spec_path = self.layout.spec_file
        spec = json.loads(spec_path.read_text()) if spec_path.is_file() else {}
        settings = AnalysisSettings.model_validate(spec.get("analysis", {}))
        if settings.eval_set is None:
            first = spec.get("eval_sets", ["test"])[0]
            settings = settings.model_copy(update={"eval_set": first})
        return settings

    def settings(self, **overrides: Any) -> AnalysisSettings:
        return settings_with(self.spec_settings(), overrides)

    def points(self, metric: str | None = None, eval_set: str | None = None) -> Points:
        return self._load_points(self.settings(metric=metric, eval_set=eval_set))

    def _load_points(self, settings: AnalysisSettings) -> Points:
        if settings.eval_set is None:  # spec_settings names one; an override only replaces it
            raise ValueError("the settings name no eval set")
        return load_points(self.layout, settings.eval_set, settings.metric)

    def analyse(self, *, save: bool = True, **overrides: Any) -> ScalingAnalysis:
        """Fit, bootstrap and compute multipliers; with ``save``, write them to the store.

        Keyword arguments override the spec's analysis settings: metric, eval_set, baseline,
        form, sizes, resamples, confidence, seed."""
        settings = self.settings(**overrides)
        points = self._load_points(settings)
        result = analyse(points, settings, data=str(self.layout.database))
        if save:
            from analysis.record import save_analysis

            self.close()  # a reader would block the writer
            save_analysis(self.layout, result)
        return result

    def plot(self, result: ScalingAnalysis | None = None, facet: str | None = None) -> list[Path]:
        """Scaling curves, multipliers and facets as PNG and SVG under results/<name>/plots/."""
        from analysis.plot import plot_analysis

        result = result or self.analyse()
        return plot_analysis(
            result, self.layout.plots, title=f"{self.name}: {_title(result)}", facet=facet
        )

    def report(self, result: ScalingAnalysis | None = None, out: Path | None = None) -> Path:
        """One self-contained HTML page: results/<name>/report.html by default."""
        from analysis.report import write_report

        result = result or self.analyse()
        figures = self.plot(result)
        return write_report(result, self.layout, figures, out or self.layout.report_page)

    def frames(self, result: ScalingAnalysis) -> dict[str, Any]:
        """The analysis as pandas frames: points, means, fits, multipliers."""
        return analysis_frames(result)


def analyse_csv(
    path: Path,
    *,
    higher_is_better: bool,
    scale: float = 1.0,
    eval_size: int | None = None,
    **overrides: Any,
) -> ScalingAnalysis:
    """Fit and compare the curves of a CSV of points (arm, size, value, optional seed)."""
    settings = settings_with(AnalysisSettings(eval_set=path.stem), overrides)
    points = read_points_csv(
        path, higher_is_better=higher_is_better, scale=scale, eval_size=eval_size
    )
    return analyse(points, settings, data=str(path))


def analysis_frames(result: ScalingAnalysis) -> dict[str, Any]:
    import pandas as pd

    fits = [
        {"arm": arm.arm, "form": form, **flat_params(fit.params, fit.intervals), **fit.quality}
        | {"formula": fit.formula}
        for arm in result.arms
        for form, fit in arm.fits.items()
    ]
    means = [{"arm": arm.arm, **vars(mean)} for arm in result.arms for mean in arm.means]
    return {
        "points": result.points.frame(),
        "means": pd.DataFrame(means),
        "fits": pd.DataFrame(fits),
        "multipliers": pd.DataFrame([vars(m) for m in result.multipliers]),
        "shared": pd.DataFrame(
            [
                {"arm": f.arm, "baseline": f.baseline, **flat_params(f.params, f.intervals)}
                | {"f_statistic": f.f_statistic, "p_value": f.p_value}
                for f in result.shared
            ]
        ),
    }


def _title(result: ScalingAnalysis) -> str:
    return f"{result.settings.eval_set} {result.metric} vs training data"
