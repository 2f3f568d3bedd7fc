"""Sampling: the config's checks, what vLLM would be given, and the transformers backend on a
tiny Hugging Face checkpoint (greedy, sampling with seeds, stop strings, the token limit); vLLM
itself where it is installed and a GPU is present."""

from __future__ import annotations

import copy
import importlib.util
from pathlib import Path

import pytest
from pydantic import ValidationError
from tiny_hf_model import gsm8k_texts, make_tiny_model

from runners.decoding import (
    Completion,
    SamplingConfig,
    batches,
    completion_from_tokens,
    greedy_completions,
    load_for_generation,
    prompt_seed,
    sample,
    vllm_engine_kwargs,
    vllm_request_kwargs,
    vllm_sampling_kwargs,
)
from scaler.fingerprint import output_fields

PROMPTS = [
    "Natalia sold clips to 48 of her friends in April. How many clips did she sell?",
    "Weng earns $12 an hour.",
    "Question: What is 3 + 4?\nAnswer:",
    "A",
    "Betty is saving money for a new wallet which costs $100. How much more money does she need?",
]


@pytest.fixture(scope="module")
def tiny_path(tmp_path_factory) -> Path:
    return make_tiny_model(tmp_path_factory.mktemp("tiny"), gsm8k_texts(100))


@pytest.fixture(scope="module")
def tiny(tiny_path):
    """The tiny checkpoint's model and tokenizer, loaded as `sample` loads them."""
    return load_for_generation(tiny_path)


def run(config: SamplingConfig, tiny, prompts=PROMPTS) -> list[list[Completion]]:
    model, tokenizer = tiny
    return sample(config, prompts, model=model, tokenizer=tokenizer)


def texts(completions: list[list[Completion]]) -> list[list[str]]:
    return [[c.text for c in samples] for samples in completions]


# --- the config and what vLLM is given --------------------------------------------------------


def test_vllm_sampling_kwargs_defaults():
    assert vllm_sampling_kwargs(SamplingConfig()) == {
        "n": 1,
        "temperature": 0.0,
        "top_p": 1.0,
        "max_tokens": 512,
        "stop": [],
        "seed": 0,
    }


def test_vllm_sampling_kwargs_carry_every_sampling_field():
    config = SamplingConfig(
        backend="vllm",
        n=8,
        temperature=0.7,
        top_p=0.95,
        max_tokens=300,
        stop=("\n\nQuestion:", "</s>"),
        seed=3,
        batch_size=7,
        gpu_memory_utilization=0.5,
    )
    kwargs = vllm_sampling_kwargs(config)
    assert kwargs == {
        "n": 8,
        "temperature": 0.7,
        "top_p": 0.95,
        "max_tokens": 300,
        "stop": ["\n\nQuestion:", "</s>"],
        "seed": 3,
    }
    assert type(kwargs["stop"]) is list  # SamplingParams takes a str or a list, not a tuple


def test_vllm_engine_kwargs():
    assert vllm_engine_kwargs(SamplingConfig(), Path("/models/m")) == {
        "model": "/models/m",
        "seed": 0,
        "gpu_memory_utilization": 0.9,
        "tensor_parallel_size": 1,
        "dtype": "auto",
        "max_model_len": None,
    }
    config = SamplingConfig(
        seed=5,
        gpu_memory_utilization=0.6,
        tensor_parallel_size=2,
        dtype="bfloat16",
        max_model_len=4096,
    )
    assert vllm_engine_kwargs(config, "Qwen/Qwen2.5-0.5B") == {
        "model": "Qwen/Qwen2.5-0.5B",
        "seed": 5,
        "gpu_memory_utilization": 0.6,
        "tensor_parallel_size": 2,
        "dtype": "bfloat16",
        "max_model_len": 4096,
    }


@pytest.mark.parametrize(
    "change, affects",
    [
        ({"backend": "vllm"}, True),
        ({"n": 2, "temperature": 1.0}, True),
        ({"top_p": 0.9}, True),
        ({"max_tokens": 10}, True),
        ({"stop": ("\n",)}, True),
        ({"seed": 1}, True),
        ({"batch_size": 8}, False),
        ({"gpu_memory_utilization": 0.5}, False),
        ({"tensor_parallel_size": 4}, False),
        ({"dtype": "float16"}, False),
        ({"max_model_len": 2048}, False),
    ],
)
def test_which_fields_change_the_step_hash(change, affects):
    assert (output_fields(SamplingConfig(**change)) != output_fields(SamplingConfig())) is affects


@pytest.mark.parametrize(
    "fields, message",
    [
        ({"n": 4}, "n=4 with temperature 0 \\(greedy\\) gives 4 identical samples"),
        ({"temperature": -0.1}, "greater than or equal to 0"),
        ({"top_p": 0.0}, "greater than 0"),
        ({"top_p": 1.5}, "less than or equal to 1"),
        ({"max_tokens": 0}, "greater than or equal to 1"),
        ({"backend": "sglang"}, "backend"),
        ({"num_samples": 2}, "Extra inputs are not permitted"),
    ],
)
def test_config_checks(fields, message):
    with pytest.raises(ValidationError, match=message):
        SamplingConfig(**fields)


def test_argument_checks(tiny, tiny_path):
    model, tokenizer = tiny
    vllm = SamplingConfig(backend="vllm")
    with pytest.raises(ValueError, match="needs model_path"):
        sample(vllm, PROMPTS)
    with pytest.raises(ValueError, match="loads the model itself"):
        sample(vllm, PROMPTS, model=model, tokenizer=tokenizer, model_path=tiny_path)
    for arguments in (
        {},
        {"model": model},
        {"model": model, "tokenizer": tokenizer, "model_path": tiny_path},
    ):
        with pytest.raises(ValueError, match="pass a model and its tokenizer, or model_path"):
            sample(SamplingConfig(), PROMPTS, **arguments)
    assert sample(SamplingConfig(), [], model=model, tokenizer=tokenizer) == []


# --- turning generated tokens into a Completion ------------------------------------------------


def test_completion_ends_at_eos(tiny):
    _, tokenizer = tiny
    words = tokenizer("Natalia sold 48 clips", add_special_tokens=False)["input_ids"]
    eos, pad = tokenizer.eos_token_id, tokenizer.pad_token_id
    completion = completion_from_tokens([*words, eos, pad, pad], tokenizer, [eos], ())
    assert completion == Completion("Natalia sold 48 clips", len(words) + 1, True)


def test_completion_cut_before_the_first_stop_string(tiny):
    _, tokenizer = tiny
    words = tokenizer("72 clips\n#### 72\nQuestion: more", add_special_tokens=False)["input_ids"]
    eos = tokenizer.eos_token_id
    completion = completion_from_tokens([*words, eos], tokenizer, [eos], ("Question:", "####"))
    assert completion.text == "72 clips\n" and completion.finished
    # Counted through the token that completed "####", as vLLM counts.
    until = completion.n_tokens
    assert "####" in tokenizer.decode(words[:until]) and "####" not in tokenizer.decode(
        words[: until - 1]
    )


def test_completion_cut_by_the_limit(tiny):
    _, tokenizer = tiny
    words = tokenizer("Natalia sold 48 clips", add_special_tokens=False)["input_ids"]
    completion = completion_from_tokens(words, tokenizer, [tokenizer.eos_token_id], ("\n",))
    assert completion == Completion("Natalia sold 48 clips", len(words), False)


# --- the transformers backend on the tiny checkpoint -------------------------------------------


def plain_greedy(model, tokenizer, prompts: list[str], max_new_tokens: int) -> list[str]:
    """Greedy decoding written out with `generate`, one prompt at a time: the reference."""
    import torch

    texts = []
    with torch.inference_mode():
        for prompt in prompts:
            batch = tokenizer([prompt], return_tensors="pt")
            output = model.generate(
                **batch,
                do_sample=False,
                max_new_tokens=max_new_tokens,
                pad_token_id=tokenizer.pad_token_id,
                eos_token_id=tokenizer.eos_token_id,
            )
            new_tokens = output[0, batch["input_ids"].shape[1] :]
            texts.append(tokenizer.decode(new_tokens, skip_special_tokens=True))
    return texts


def test_greedy_is_deterministic_and_equals_plain_generate(tiny):
    model, tokenizer = tiny
    config = SamplingConfig(max_tokens=12, batch_size=2)
    first, again = run(config, tiny), run(config, tiny)
    assert first == again
    assert [len(samples) for samples in first] == [1] * len(PROMPTS)
    reference = plain_greedy(model, tokenizer, PROMPTS, 12)
    assert [s[0].text for s in first] == reference
    # runners.decoding.greedy_completions (used by training) is the same decoding.
    assert greedy_completions(model, tokenizer, PROMPTS, 2, 12) == reference


def test_loading_from_the_checkpoint_folder_samples_the_same(tiny, tiny_path):
    config = SamplingConfig(max_tokens=8)
    assert sample(config, PROMPTS[:2], model_path=tiny_path) == run(config, tiny, PROMPTS[:2])


def test_a_right_padding_tokenizer_gives_the_same_completions(tiny):
    model, tokenizer = tiny
    right = copy.deepcopy(tokenizer)
    right.padding_side = "right"
    config = SamplingConfig(max_tokens=8, batch_size=len(PROMPTS))
    assert sample(config, PROMPTS, model=model, tokenizer=right) == run(config, tiny)


def test_sampling_is_reproducible_for_a_seed_and_differs_across_seeds(tiny):
    config = SamplingConfig(n=3, temperature=1.0, max_tokens=10, batch_size=2, seed=7)
    first = run(config, tiny)
    assert [len(samples) for samples in first] == [3] * len(PROMPTS)
    assert run(config, tiny) == first
    assert texts(run(config.model_copy(update={"seed": 8}), tiny)) != texts(first)
    # The n samples of a prompt are drawn independently, not copied.
    assert any(len(set(samples)) > 1 for samples in texts(first))


def seeded(config: SamplingConfig, tiny, prompts, **options) -> list[list[str]]:
    """Texts sampled with each prompt's streams seeded from the prompt's index in PROMPTS."""
    model, tokenizer = tiny
    seeds = [prompt_seed(config.seed, PROMPTS.index(p)) for p in prompts]
    return texts(sample(config, prompts, model=model, tokenizer=tokenizer, seeds=seeds, **options))


def test_a_prompts_own_streams_do_not_depend_on_the_other_prompts(tiny):
    config = SamplingConfig(n=3, temperature=1.0, max_tokens=10, batch_size=2, seed=7)
    everything = seeded(config, tiny, PROMPTS)
    assert seeded(config, tiny, PROMPTS) == everything
    assert everything != texts(run(config, tiny))  # not the one stream of the call
    # The same batches from a later start (a shard starting on a batch boundary): the same texts.
    assert seeded(config, tiny, PROMPTS[2:]) == everything[2:]
    # Each prompt alone, in a batch of its own: the same texts but for float-level ties, which
    # a random tiny model at temperature 1 does not come near in 10 tokens.
    alone = [seeded(config, tiny, [p])[0] for p in PROMPTS]
    assert alone == everything
    # Groups cut batches: the prompts of a group share theirs, and nothing else does.
    assert seeded(config, tiny, PROMPTS, groups=[0, 0, 1, 2, 2]) == everything
    assert seeded(config.model_copy(update={"seed": 8}), tiny, PROMPTS) != everything
    assert any(len(set(samples)) > 1 for samples in everything)


def test_own_streams_sample_the_configured_distribution(tiny):
    # Each of the first tokens' frequencies over many seeds is close to generate's own
    # sampling at the same temperature and top_p: the same distribution, other draws.
    from collections import Counter

    config = SamplingConfig(n=400, temperature=0.8, top_p=0.9, max_tokens=1, seed=3)
    prompt = [PROMPTS[2]]
    own = Counter(seeded(config, tiny, prompt)[0])
    plain = Counter(texts(run(config, tiny, prompt))[0])
    assert len(own) > 3
    for text in set(own) | set(plain):
        assert abs(own[text] - plain[text]) / 400 < 0.1, text


def test_batches_cut_at_size_and_group_changes():
    assert batches(5, 2) == [(0, 2), (2, 4), (4, 5)]
    assert batches(5, 3, ["a", "a", "b", "b", "b"]) == [(0, 2), (2, 5)]
    assert batches(4, 1, [0, 0, 1, 1]) == [(0, 1), (1, 2), (2, 3), (3, 4)]
    assert batches(0, 4) == []


def test_prompt_seeds_are_fixed_and_vllm_gets_one_per_request():
    assert prompt_seed(0, 5) == prompt_seed(0, 5) != prompt_seed(0, 6) != prompt_seed(1, 5)
    assert prompt_seed(0, [3, "x = 1;"]) != prompt_seed(0, [3, "x = 2;"])
    assert 0 <= prompt_seed(2**32 - 1, "any") < 2**32
    config = SamplingConfig(backend="vllm", n=2, temperature=1.0)
    requests = vllm_request_kwargs(config, [11, 12])
    assert [r["seed"] for r in requests] == [11, 12]
    assert all(r | {"seed": 0} == vllm_sampling_kwargs(config) for r in requests)


def test_a_models_generation_config_does_not_change_the_samples(tiny):
    # A checkpoint's generation_config.json fills whatever `generate` is not given; vLLM given
    # SamplingParams ignores it, so the transformers backend must too.
    model, _ = tiny
    greedy = SamplingConfig(max_tokens=8)
    sampled = SamplingConfig(n=3, temperature=1.0, max_tokens=8)
    expected = run(greedy, tiny), run(sampled, tiny)
    saved = copy.deepcopy(model.generation_config)
    try:
        knobs = model.generation_config
        knobs.do_sample, knobs.temperature, knobs.top_k, knobs.top_p = True, 0.3, 1, 0.5
        knobs.typical_p, knobs.min_p = 0.2, 0.9
        knobs.repetition_penalty, knobs.no_repeat_ngram_size = 5.0, 2
        assert (run(greedy, tiny), run(sampled, tiny)) == expected
    finally:
        model.generation_config = saved


def test_sampling_leaves_the_callers_random_state_and_mode(tiny):
    import torch

    model, _ = tiny
    model.train()
    before = torch.random.get_rng_state()
    run(SamplingConfig(n=2, temperature=1.0, max_tokens=4), tiny, PROMPTS[:2])
    assert torch.equal(torch.random.get_rng_state(), before)
    assert model.training
    model.eval()


def expect_cut(free: Completion, stopped: Completion, stop: str) -> None:
    """`stopped` is `free` generated again with stop string `stop`."""
    cut = free.text.find(stop)
    if cut < 0:
        assert stopped == free
    else:
        assert stopped.text == free.text[:cut] and stopped.finished
        assert stopped.n_tokens <= free.n_tokens


def test_stop_strings_cut_the_text(tiny):
    config = SamplingConfig(n=2, temperature=1.0, max_tokens=16, seed=1)
    free = run(config, tiny)
    # A stop string taken from the middle of a sample must end it there (the random stream is
    # drawn for every row at every step, so ending rows early does not change the others).
    text = next(c.text for s in free for c in s if len(c.text) >= 8 and "\ufffd" not in c.text[:7])
    stop = text[4:7]
    stopped = run(config.model_copy(update={"stop": ("never generated", stop)}), tiny)
    for free_samples, stopped_samples in zip(free, stopped, strict=True):
        for before, after in zip(free_samples, stopped_samples, strict=True):
            expect_cut(before, after, stop)
    assert any(c.text == text[:4] for s in stopped for c in s)


def test_a_stop_string_begun_in_the_prompt_does_not_stop(tiny):
    # vLLM matches stop strings in the generated text only; so must the transformers backend.
    config = SamplingConfig(max_tokens=12, batch_size=1)
    for prompt in PROMPTS:
        [[free]] = run(config, tiny, [prompt])
        stop = prompt[-1] + free.text[:2]
        [[stopped]] = run(config.model_copy(update={"stop": (stop,)}), tiny, [prompt])
        expect_cut(free, stopped, stop)


def test_max_tokens_is_respected(tiny):
    config = SamplingConfig(n=2, temperature=1.0, max_tokens=5)
    completions = [c for samples in run(config, tiny) for c in samples]
    assert all(1 <= c.n_tokens <= 5 for c in completions)
    assert all(c.finished or c.n_tokens == 5 for c in completions)
    assert any(not c.finished for c in completions)  # a random model rarely says EOS in 5 tokens


# --- vLLM, where it can run ---------------------------------------------------------------------


def _vllm_unavailable() -> str | None:
    if importlib.util.find_spec("vllm") is None:
        return "vllm is not installed"
    import torch

    if not torch.cuda.is_available():
        return "no CUDA device"
    return None


VLLM_UNAVAILABLE = _vllm_unavailable()


@pytest.mark.gpu
@pytest.mark.skipif(VLLM_UNAVAILABLE is not None, reason=str(VLLM_UNAVAILABLE))
def test_vllm_backend(tmp_path):
    # Head size 64: vLLM's attention kernels do not all take the default tiny model's 16.
    path = make_tiny_model(tmp_path / "tiny", gsm8k_texts(100), hidden=128, heads=2)
    config = SamplingConfig(
        backend="vllm",
        n=3,
        temperature=1.0,
        max_tokens=12,
        stop=("\n",),
        gpu_memory_utilization=0.3,
        max_model_len=512,
    )
    completions = sample(config, PROMPTS, model_path=path)
    assert [len(samples) for samples in completions] == [3] * len(PROMPTS)
    for c in (c for samples in completions for c in samples):
        assert "\n" not in c.text
        assert 1 <= c.n_tokens <= 12
        assert c.finished or c.n_tokens == 12
