"""Stages that run inside jobs: generate, train, evaluate (and their demo world).

Each stage module exposes pydantic `Config` classes and `run(config, inputs, out_dir) -> dict`.
Importing a stage is light (pydantic only); torch, transformers, trl and datasets are imported
inside `run`, so the orchestrator can validate specs without them.
"""
