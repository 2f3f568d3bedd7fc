"""What runs inside jobs: the stages (`runners.stages`: generate, prepare, source, sample, verify,
rollout, build, train, evaluate, merge), the judges (`runners.judging`), the worlds
(`runners.worlds`: demo, real) and the pieces the stages share.

Shared pieces: `files` (every file the stages exchange, its reader and writer, the Parquet
schemas), `decoding` (sampling with transformers or vLLM), `trainer` (trl's trainers as the
train stage drives them), `prompts`, `model`, `readers` (GSM8K, MATH and a user's records),
`credit` (step values and first pits), `reasoning_paths` and `compute_budget` (sampling FLOPs),
`shards` (a stage's problems in fixed ranges) and `summaries` (what the stages that loop over
problems report, shared with the merge of their shards).

Each stage module exposes a frozen pydantic `Config`, `run(config, inputs, out_dir) -> dict` and
its contract (`INPUTS`, `OUTPUTS`). Importing a stage is light (pydantic only); torch,
transformers, trl and datasets are imported inside `run`, so the orchestrator can validate specs
and plan without them.
"""

NO_EFFECT = {"affects_output": False}
"""`json_schema_extra` of a config field that does not change a step's output (a batch size that
trades memory for speed, a path whose content is hashed elsewhere): scaler.fingerprint leaves it
out of the step id, so changing it reuses finished steps."""

OMITTED_WHEN_NONE = {"omitted_when_none": True}
"""`json_schema_extra` of a config field added after steps were cached: while it is None,
scaler.fingerprint leaves it out of the step id (in a stage's config or in any model it holds),
so the ids of configs that never set it (the demo world's `verifier`, `skills.shortcut`) stay
as they were; once set, it is hashed like any other field."""
