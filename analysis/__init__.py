"""Scaling analysis of scaler's results: fits, bootstrap intervals, multipliers, plots, reports.

For notebooks: ``open_experiment(name)`` (see analysis.experiment), ``analyse_csv(path, ...)``
for any table of points, and ``analyse(points, settings, data)`` on points of one's own.
"""

from analysis.experiment import Experiment, analyse_csv, open_experiment
from analysis.points import Points
from analysis.scaling import ScalingAnalysis, analyse

__all__ = ["Experiment", "Points", "ScalingAnalysis", "analyse", "analyse_csv", "open_experiment"]
