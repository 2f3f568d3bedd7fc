"""The stages that run inside jobs, one module each: generate, prepare, source, sample, verify,
rollout, build, train, evaluate.

Each exposes a frozen pydantic `Config` and `run(config, inputs, out_dir) -> dict`, writes only
under its out_dir, and imports torch, transformers, trl or vLLM inside `run`. A stage does not
import another stage: what two stages share lives one level up in `runners/`.
"""
