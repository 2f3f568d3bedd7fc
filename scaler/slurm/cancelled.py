"""Why Slurm cancelled a step's job: for its own input, or with its array for another's.

`kill-on-invalid-dep` cancels a whole array when a job it waits on (`afterok`) ends badly. Where
the array waits task by task (`aftercorr`, scaler.slurm.render) only the task that needed the
failed one goes; where it cannot (a step needing several tasks, several steps one task, or a
re-run waiting on tasks of an earlier submission), steps that need none of what failed are
cancelled with it. They are told apart here from the jobs recorded in `slurm/jobs.jsonl`
(each sbatch call names the jobs it waited on): a step is *cancelled with its array* when Slurm
cancelled its job (squeue's DependencyNeverSatisfied, sacct's plain CANCELLED) and none of the
jobs that ended badly holds one of its own inputs. The follower submits those again and says
so, a re-run says so when it submits them, and `scaler status` tells them apart from steps
cancelled by a user (`scancel`, `scaler cancel`) or for their own input.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass

from scaler.layout import Layout
from scaler.slurm.cluster import JobState, Slurm
from scaler.slurm.records import active, ended_states, read_records
from scaler.step_index import StepRef


@dataclass(frozen=True)
class WithArray:
    """Steps cancelled with their array, and the steps whose jobs' ending cancelled it."""

    steps: tuple[StepRef, ...]
    culprits: tuple[tuple[str, JobState], ...]
    """(step name, how its job ended), in the order of the records."""

    def line(self, then: str) -> str:
        """One line naming them, e.g. `3 evaluate steps were cancelled with their array when
        train-ab12 was cancelled; they do not need it and {then}: evaluate-..., ...`."""
        stages = Counter(step.stage for step in self.steps)
        what = (
            f"{len(self.steps)} {next(iter(stages))}" if len(stages) == 1 else str(len(self.steps))
        )
        noun = "step was" if len(self.steps) == 1 else "steps were"
        names = ", ".join(name for name, _ in self.culprits)
        if all(state.state == "CANCELLED" for _, state in self.culprits):
            ended = "was cancelled" if len(self.culprits) == 1 else "were cancelled"
        elif len(self.culprits) == 1:
            ended = f"failed ({self.culprits[0][1].state})"
        else:
            ended = "ended badly (" + ", ".join(s.state for _, s in self.culprits) + ")"
        it = "it" if len(self.culprits) == 1 else "them"
        subject = "it does" if len(self.steps) == 1 else "they do"
        listed = ", ".join(step.name for step in self.steps)
        return (
            f"{what} {noun} cancelled with their array when {names} {ended}; "
            f"{subject} not need {it} and {then}: {listed}"
        )


def cancelled_with_array(
    steps: Iterable[StepRef], layout: Layout, slurm: Slurm, queue: dict[str, JobState]
) -> WithArray | None:
    """Of `steps`, those whose latest job Slurm cancelled with its array for a job none of their
    inputs is in (None when there are none). `queue` is one `Slurm.queue()` of now; tasks it no
    longer holds are looked up in accounting (one sacct call each for the steps and the jobs
    they waited on)."""
    records = read_records(layout)
    latest: dict[str, str] = {}
    waited: dict[str, list[str]] = {}  # job -> the ids its sbatch call waited on
    tasks_of: dict[str, list[str]] = {}  # job -> its tasks
    holder: dict[str, str] = {}  # task -> the step it ran, over every submission
    for record in records:
        job = record["tasks"][0].split("_")[0]
        waited[job], tasks_of[job] = record.get("after", []), record["tasks"]
        latest.update(zip(record["steps"], record["tasks"], strict=True))
        holder.update(zip(record["tasks"], record["steps"], strict=True))
    ended = [s for s in steps if s.name in latest and not active(queue, latest[s.name])]
    states = ended_states(slurm, queue, [latest[s.name] for s in ended]) if ended else {}
    killed = [s for s in ended if _killed(states.get(latest[s.name]))]
    if not killed:
        return None

    def expand(ids: list[str]) -> list[str]:  # a whole array's id -> its tasks
        return [t for i in ids for t in ([i] if "_" in i else tasks_of.get(i, [i]))]

    needed = {t for s in killed for t in expand(waited[latest[s.name].split("_")[0]])}
    looked = [t for t in sorted(needed) if not active(queue, t)]
    how = ended_states(slurm, queue, looked) if looked else {}
    bad = {t: state for t, state in how.items() if state.state != "COMPLETED"}
    innocent: list[StepRef] = []
    culprits: dict[str, JobState] = {}
    for step in killed:
        why = [t for t in expand(waited[latest[step.name].split("_")[0]]) if t in bad]
        names = {holder[t]: bad[t] for t in why if t in holder}
        own = {needed_step.name for _, needed_step in step.inputs}
        if names and not own & names.keys():
            innocent.append(step)
            culprits |= names
    if not innocent:
        return None
    order: dict[str, int] = {}
    for name in holder.values():
        order.setdefault(name, len(order))
    ranked = sorted(culprits.items(), key=lambda item: order.get(item[0], 0))
    return WithArray(tuple(innocent), tuple(ranked))


def _killed(state: JobState | None) -> bool:
    return state is not None and state.killed_for_dependency
