"""Shards: the problems of a stage that loops over them, split into fixed ranges of one order.

A sharded stage (sample, and the verify of its samples; rollout; evaluate) runs one step per
range [start, stop) of its problems' one order (the training pool's seeded order, an eval set's
file order), each range a multiple of `shard_size` from 0: shard i holds problems i * size to
(i + 1) * size. A shard's step id hashes its range, so a larger data size adds only its new
shards, and sizes that are multiples of `shard_size` share every shard. A size that is not one
ends in a partial shard [i * size, P): a step of its own, run again in full when a larger size
needs the whole range. Cutting shards at the sizes instead would let every size share its
partial shard, but then a shard's range would depend on which other sizes a spec lists, and a
spec that adds a size would run its larger sizes' shards again; a partial shard costs at most
`shard_size` - 1 problems once.

The merge stage (runners.stages.merge) joins the shards of one step into the files and metrics
that the unsharded step writes, which is what later stages and the results store read.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, model_validator


class Shard(BaseModel):
    """A range [start, stop) of a stage's problems, by their place in its one order."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    start: int = Field(ge=0)
    stop: int = Field(ge=1)

    @model_validator(mode="after")
    def _not_empty(self) -> Shard:
        if self.stop <= self.start:
            raise ValueError(f"a shard holds problems: stop {self.stop} <= start {self.start}")
        return self

    def __contains__(self, problem_id: object) -> bool:
        return isinstance(problem_id, int) and self.start <= problem_id < self.stop

    @property
    def problems(self) -> int:
        return self.stop - self.start


def shards_of(count: int, size: int) -> list[Shard]:
    """The shards of the first `count` problems: ranges of `size`, the last one partial when
    `size` does not divide `count`."""
    if count < 1 or size < 1:
        raise ValueError(f"shards of {count} problems of {size} each")
    return [Shard(start=start, stop=min(start + size, count)) for start in range(0, count, size)]
