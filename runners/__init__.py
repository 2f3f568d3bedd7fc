"""Stages that run inside jobs: generate, train, evaluate (and their demo world).

Each stage module exposes pydantic `Config` classes and `run(config, inputs, out_dir) -> dict`.
Importing a stage is light (pydantic only); torch, transformers, trl and datasets are imported
inside `run`, so the orchestrator can validate specs without them.
"""

NO_EFFECT = {"affects_output": False}
"""`json_schema_extra` of a config field that does not change a step's output (a batch size that
trades memory for speed, a path whose content is hashed elsewhere): scaler.fingerprint leaves it
out of the step id, so changing it reuses finished steps."""

OMITTED_WHEN_NONE = {"omitted_when_none": True}
"""`json_schema_extra` of a config field added after steps were cached: while it is None,
scaler.fingerprint leaves it out of the step id, so the ids of configs that never set it (the
demo world's `verifier`) stay as they were; once set, it is hashed like any other field."""
