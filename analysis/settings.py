"""The analysis' settings: the spec's `analysis:` section, and how arms are named.

Owned here, beside the code that reads them, and composed into the spec by
`scaler.spec.schema` (as the runners' settings are), so a spec is checked against exactly what
the fitter accepts. Importing this module costs pydantic only: `scaler` imports it to build its
spec model, and planning must stay light.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

Metric = Literal["accuracy", "pass_at_k", "maj_at_k"]
"""accuracy: greedy pass@1; pass_at_k / maj_at_k: of the k samples of stages.evaluate.samples."""

FitForm = Literal["power", "power_e0", "log_linear", "shared"]
"""power: err = E + A*D^-alpha; power_e0: the same with E = 0; log_linear: Yuan's a + b*ln D;
shared: each arm fitted jointly with its baseline, err_arm = E + A*(m*D)^-alpha (m a parameter)."""


class AnalysisSettings(BaseModel):
    """How `scaler fit`, `plot` and `report` read the results; their flags override these."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    metric: Metric = Field("accuracy", description="The score fitted (as error, 1 - score).")
    eval_set: str | None = Field(
        None, description="Which evaluation set is fitted; default: the first of eval_sets."
    )
    baseline: str | None = Field(
        None,
        description="Arm the multipliers are over, e.g. sft or teacher:sft; "
        "default: each source's sft arm.",
    )
    form: FitForm = Field("power", description="The fitted form the multipliers use.")
    sizes: list[int] | None = Field(
        None, description="Data sizes at which multipliers are reported; default: the grid's."
    )
    resamples: int = Field(
        1000, ge=0, description="Bootstrap resamples (seeds and eval problems); 0: none."
    )
    confidence: float = Field(0.9, gt=0, lt=1, description="Level of the intervals.")
    seed: int = Field(0, description="Seed of the bootstrap's random draws.")

    @field_validator("sizes")
    @classmethod
    def _sizes_positive(cls, sizes: list[int] | None) -> list[int] | None:
        if sizes is not None and (not sizes or any(size <= 0 for size in sizes)):
            raise ValueError(f"sizes must be a non-empty list of sizes > 0, got {sizes}")
        return sizes


ALGORITHM_ORDER = ("sft", "rft", "dpo", "per_step_dpo")
"""The order arms are listed in: the spec's `Algorithm` names, declared here so that reading
results needs no spec model (tests/test_analysis/test_settings.py checks the two agree)."""


def arm_name(source: str, algorithm: str, n_sources: int) -> str:
    """An arm is named by its algorithm alone when the grid has one source."""
    return algorithm if n_sources == 1 else f"{source}:{algorithm}"


def baseline_of(arm: str, settings: AnalysisSettings) -> str:
    """The named baseline, or the SFT arm of the arm's source (``sft`` or ``<source>:sft``)."""
    if settings.baseline is not None:
        return settings.baseline
    source, _, _ = arm.rpartition(":")
    return f"{source}:sft" if source else "sft"
