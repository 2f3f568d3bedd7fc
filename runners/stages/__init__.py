"""The stages that run inside jobs, one module each: generate, prepare, source, pretrain, sample,
verify, rollout, build, train, evaluate, and merge (which joins the shards of the stages that
loop over problems, runners.shards).

Each exposes a frozen pydantic `Config` and `run(config, inputs, out_dir) -> dict`, writes only
under its out_dir, and imports torch, transformers, trl or vLLM inside `run`. A stage does not
import another stage: what two stages share lives one level up in `runners/`.

Each also declares its contract: `INPUTS`, the input roles `run` reads (`inputs[role]` is the
folder of the step wired to that role), and `OUTPUTS`, the files (runners.files) it writes.
scaler.plan checks every step it builds against them, so a role spelled wrong is an error when
the plan is made rather than a KeyError inside a job.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class Input:
    """One input role of a stage."""

    role: str
    reads: tuple[str, ...] = ()
    """Files (runners.files) `run` always reads from the input's folder: the stage wired to this
    role must declare them in its OUTPUTS."""
    required: bool = True
    """False: some configs do without it (a checkpoint sampled as it is needs no `model`)."""
    prefix: bool = False
    """The role names a family: `pool_` stands for `pool_<name>`, any number of them."""

    def matches(self, role: str) -> bool:
        return role.startswith(self.role) if self.prefix else role == self.role


def check_inputs(stage: str, declared: Iterable[Input], wired: Mapping[str, Iterable[str]]) -> None:
    """Raise ValueError unless `wired` (role -> the OUTPUTS of the step wired to it) gives the
    stage each required role, only roles it declares, and the files each role reads."""
    declared = tuple(declared)
    for role, outputs in wired.items():
        match = next((d for d in declared if d.matches(role)), None)
        if match is None:
            names = ", ".join(d.role + ("<name>" if d.prefix else "") for d in declared)
            raise ValueError(
                f"stage {stage!r} has no input {role!r}; it reads {names or 'no inputs'}"
            )
        missing = [name for name in match.reads if name not in set(outputs)]
        if missing:
            raise ValueError(
                f"stage {stage!r} reads {', '.join(missing)} from its {role!r} input, "
                "which the step wired to it does not write"
            )
    absent = [d.role for d in declared if d.required and not d.prefix and d.role not in wired]
    if absent:
        raise ValueError(f"stage {stage!r} needs the input(s) {', '.join(absent)}")
