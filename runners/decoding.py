"""Sampling completions: one interface over transformers' `generate` and vLLM.

`sample(config, prompts, ...)` returns `config.n` completions per prompt, in prompt order,
each cut before its first stop string; `greedy_completions` (training's validation) and
`sample_texts` (the sample and rollout stages) are its two common uses. The transformers
backend runs anywhere (CPU tests, a model being trained, in memory); vLLM loads a saved
checkpoint on a GPU and is much faster.
What vLLM is given is computed by pure functions (`vllm_sampling_kwargs`,
`vllm_engine_kwargs`), tested without vLLM or a GPU.

The two backends agree on the rules, not on the bits: the same config samples the same
distribution (no top-k, no repetition penalty: knobs a model's generation_config.json would
otherwise pass to transformers but not to vLLM given explicit SamplingParams; EOS is the
tokenizer's or any of generation_config.json's, as vLLM does), but the random streams and
kernels differ, so sampled texts differ, and even greedy texts can where two tokens nearly tie.

Reproducibility. vLLM seeds every request with `seed`, so a prompt's samples do not depend on
the other prompts (and a prompt given twice gets the same samples: ask for n instead).
transformers draws from one stream seeded once per `sample` call, so sampled texts depend on
`batch_size` and on which prompts share a batch; they are reproducible for the same prompts and
batch_size. batch_size is nevertheless kept out of the step hash: it is a throughput knob, and
any batch composition samples the same distribution.

Given `seeds` (one per prompt: a stage with `seeding: per_problem` derives them from `seed` and
each problem, `prompt_seed`), every sample has a random stream of its own, seeded by its
prompt's seed and its index: with transformers a row's token is drawn from its own stream
(`_row_streams`), with vLLM each request is seeded with its prompt's. A prompt's samples then
do not depend on which prompts share its batch or its step, so a stage split into shards draws
the samples an unsharded step draws. With transformers the floats of a forward pass still
depend on the batch's shape (its size and padding, in the last bits), so a near tie can go
either way in another batch: identical batches give identical samples, and `groups` keeps
prompts of different groups (problems) out of each other's batches.

n_tokens counts generated tokens through the one that ended the completion: EOS included, or
the token that completed the first stop string (the stop string is cut from the text but its
tokens were generated and counted, as vLLM counts them), or all max_tokens.
"""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from runners import NO_EFFECT, OMITTED_WHEN_NONE

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase


class SamplingConfig(BaseModel):
    """What to sample and how; the engine fields change speed and memory, not the samples."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    backend: Literal["transformers", "vllm"] = "transformers"
    """transformers: `generate`, anywhere, also on a model in memory; vllm: a GPU, fast."""
    n: int = Field(1, ge=1)
    """Samples per prompt."""
    temperature: float = Field(0.0, ge=0)
    """Softmax temperature; 0 is greedy decoding."""
    top_p: float = Field(1.0, gt=0, le=1)
    """Nucleus sampling: sample from the smallest set of tokens with this much probability."""
    max_tokens: int = Field(512, ge=1)
    """Generated tokens per sample at most."""
    stop: tuple[str, ...] = ()
    """Stop strings: a sample ends before the first one, which is not kept."""
    seed: int = 0
    """Seed of the sampling random stream (see the module docstring)."""
    batch_size: int = Field(64, ge=1, json_schema_extra=NO_EFFECT)
    """Prompts per `generate` call (transformers backend; n rows each); sampled texts depend on
    it, their distribution does not (see the module docstring)."""
    gpu_memory_utilization: float = Field(0.9, gt=0, le=1, json_schema_extra=NO_EFFECT)
    """vLLM: fraction of GPU memory for weights and KV cache."""
    tensor_parallel_size: int = Field(1, ge=1, json_schema_extra=NO_EFFECT)
    """vLLM: GPUs one model is split over."""
    dtype: str = Field("auto", json_schema_extra=NO_EFFECT)
    """vLLM: weight and activation dtype; auto: chosen by vLLM from the checkpoint."""
    max_model_len: int | None = Field(None, ge=1, json_schema_extra=NO_EFFECT)
    """vLLM: longest prompt + completion; None: the model's own limit."""

    @model_validator(mode="after")
    def _greedy_samples_once(self) -> SamplingConfig:
        if self.temperature == 0 and self.n > 1:
            raise ValueError(
                f"n={self.n} with temperature 0 (greedy) gives {self.n} identical samples;"
                " set temperature > 0 or n = 1"
            )
        return self


class DecodingSettings(BaseModel):
    """How a stage decodes: the settings of evaluation, sampling and rollouts in a spec."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    backend: Literal["transformers", "vllm"] = "transformers"
    """transformers: batched generate on CPU or GPU; vllm: a GPU engine (the gpu extra)."""
    batch_size: int = Field(250, ge=1)
    """Prompts decoded together (transformers, left-padded)."""
    max_new_tokens: int = Field(40, ge=1)
    """Generation limit; the longest default demo solution has 27 tokens with <eos>."""
    stop: tuple[str, ...] = ()
    """Stop strings: a completion ends before the first one."""
    temperature: float = Field(0.7, gt=0)
    """Sampling temperature."""
    top_p: float = Field(1.0, gt=0, le=1)
    """Nucleus sampling."""
    seed: int = 0
    """Seed of the samples."""
    seeding: Literal["per_problem"] | None = Field(None, json_schema_extra=OMITTED_WHEN_NONE)
    """per_problem: each problem's samples come from random streams of their own, seeded by
    `seed` and the problem, so they do not depend on the other problems of a batch or a step
    (what `shard_size` needs); None: one stream per step (transformers), which batch_size and
    the other problems move. Left out of the step id while None."""
    shard_size: int | None = Field(None, ge=1, json_schema_extra=NO_EFFECT)
    """Problems per step: the plan splits the stage's problems into shards of this many, one
    step each, over fixed ranges of the one problem order (a step's own range is its `shard`);
    None: one step. Not part of any step id: sharded or not, the results are the same."""

    def check_shards(self, random: bool, aligned: bool) -> None:
        """Raise ValueError unless shards of `shard_size` give an unsharded step's results: a
        stage that draws at random (`random`) needs per-problem streams, and one whose
        transformers batches run through its problems in order (`aligned`) needs every shard to
        start where an unsharded step's batch starts (a batch's floats depend on its shape)."""
        if self.shard_size is None:
            return
        if random and self.seeding != "per_problem":
            raise ValueError(
                "shard_size needs seeding: per_problem: with one random stream per step, a "
                "problem's samples would depend on the shard it falls in"
            )
        if aligned and self.backend == "transformers" and self.shard_size % self.batch_size:
            raise ValueError(
                f"shard_size {self.shard_size} is not a multiple of batch_size "
                f"{self.batch_size}: a shard's batches would not be an unsharded step's, and "
                "the floats of a batch (so a near tie) depend on its shape; use a multiple"
            )

    def problem_seeds(self, keys: Sequence[Any]) -> list[int] | None:
        """The seed of each problem's samples (`keys`: what names each problem, JSON values)
        with `seeding: per_problem`; None (one stream) otherwise."""
        if self.seeding != "per_problem":
            return None
        return [prompt_seed(self.seed, key) for key in keys]

    def sampling(self, n: int = 1, greedy: bool = False) -> SamplingConfig:
        """n samples per prompt with these settings (or the greedy completion)."""
        common = {"backend": self.backend, "max_tokens": self.max_new_tokens}
        common |= {"stop": self.stop, "batch_size": self.batch_size}
        if greedy:
            return SamplingConfig(**common)
        return SamplingConfig(
            **common, n=n, temperature=self.temperature, top_p=self.top_p, seed=self.seed
        )


def prompt_seed(seed: int, key: Any) -> int:
    """The seed of one prompt's streams: a hash of `seed` and `key` (a problem id, or a problem
    id and a prefix), the same on every machine; 32 bits, as every engine takes them."""
    text = json.dumps([seed, key], sort_keys=True, separators=(",", ":"))
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:4], "big")


@dataclass(frozen=True)
class Completion:
    """One sampled continuation of a prompt."""

    text: str
    """Decoded without special tokens, cut before the first stop string."""
    n_tokens: int
    """Generated tokens through the one that ended it (see the module docstring)."""
    finished: bool
    """Ended by EOS or a stop string; False when cut by max_tokens."""


def sample(
    config: SamplingConfig,
    prompts: list[str],
    *,
    model: PreTrainedModel | None = None,
    tokenizer: PreTrainedTokenizerBase | None = None,
    model_path: str | Path | None = None,
    seeds: Sequence[int] | None = None,
    groups: Sequence[Any] | None = None,
) -> list[list[Completion]]:
    """`config.n` completions of every prompt, in prompt order. The transformers backend takes
    an in-memory model and tokenizer, or loads them from model_path; vLLM needs model_path.

    `seeds`: one per prompt, each prompt's samples drawn from streams of their own (see the
    module docstring); None: one stream seeded with config.seed. `groups`: one key per prompt,
    consecutive prompts of a key together; transformers batches never mix two keys."""
    if seeds is not None and len(seeds) != len(prompts):
        raise ValueError(f"{len(seeds)} seeds for {len(prompts)} prompts")
    if groups is not None and len(groups) != len(prompts):
        raise ValueError(f"{len(groups)} groups for {len(prompts)} prompts")
    if config.backend == "vllm":
        if model is not None or tokenizer is not None:
            raise ValueError("the vllm backend loads the model itself: pass model_path only")
        if model_path is None:
            raise ValueError("the vllm backend needs model_path (a checkpoint folder or Hub id)")
        return _sample_vllm(config, prompts, model_path, seeds) if prompts else []
    in_memory = model is not None and tokenizer is not None and model_path is None
    saved = model is None and tokenizer is None and model_path is not None
    if not (in_memory or saved):
        raise ValueError("pass a model and its tokenizer, or model_path (not both)")
    if not prompts:
        return []
    if saved:
        model, tokenizer = load_for_generation(model_path)
    return _sample_transformers(config, prompts, model, tokenizer, seeds, groups)


def greedy_completions(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    prompts: list[str],
    batch_size: int,
    max_new_tokens: int,
) -> list[str]:
    """The greedy completion of every prompt of a model in memory, decoded without special
    tokens (training's validation)."""
    config = SamplingConfig(max_tokens=max_new_tokens, batch_size=batch_size)
    return [c.text for [c] in sample(config, prompts, model=model, tokenizer=tokenizer)]


def sample_texts(
    world: str,
    sampling: SamplingConfig,
    prompts: list[str],
    loaded: dict[str, Any],
    seeds: Sequence[int] | None = None,
    groups: Sequence[Any] | None = None,
) -> list[list[tuple[str, int]]]:
    """(text, n_tokens) of every sample of every prompt, each text written as the world's
    solutions are (runners.worlds.World.sampled_text); `loaded` is what load_sampler gives,
    `seeds` and `groups` as `sample` takes them."""
    from runners import worlds

    sampled_text = worlds.world(world).sampled_text
    drawn = sample(sampling, prompts, **loaded, seeds=seeds, groups=groups)
    return [[(sampled_text(c.text), c.n_tokens) for c in completions] for completions in drawn]


def vllm_sampling_kwargs(config: SamplingConfig) -> dict[str, Any]:
    """Keyword arguments of `vllm.SamplingParams` for this config."""
    return {
        "n": config.n,
        "temperature": config.temperature,
        "top_p": config.top_p,
        "max_tokens": config.max_tokens,
        "stop": list(config.stop),
        "seed": config.seed,
    }


def vllm_request_kwargs(config: SamplingConfig, seeds: Sequence[int]) -> list[dict[str, Any]]:
    """`vllm.SamplingParams` keyword arguments of each request, seeded with its prompt's seed."""
    return [vllm_sampling_kwargs(config) | {"seed": seed} for seed in seeds]


def vllm_engine_kwargs(config: SamplingConfig, model_path: str | Path) -> dict[str, Any]:
    """Keyword arguments of `vllm.LLM` for this config and checkpoint."""
    return {
        "model": str(model_path),
        "seed": config.seed,
        "gpu_memory_utilization": config.gpu_memory_utilization,
        "tensor_parallel_size": config.tensor_parallel_size,
        "dtype": config.dtype,
        "max_model_len": config.max_model_len,
    }


def load_sampler(
    backend: str, checkpoint: str | Path
) -> tuple[dict[str, Any], PreTrainedTokenizerBase]:
    """What `sample` is given for a checkpoint (a loaded model for transformers, its path for
    vLLM, which loads it itself), and its tokenizer (to render prompts)."""
    if backend == "vllm":
        from runners.model import load_pretrained_tokenizer

        return {"model_path": checkpoint}, load_pretrained_tokenizer(checkpoint)
    model, tokenizer = load_for_generation(checkpoint)
    return {"model": model, "tokenizer": tokenizer}, tokenizer


def load_for_generation(
    model_path: str | Path,
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """A checkpoint's model (bfloat16 on a GPU that has it, else float32 on the CPU) and its
    tokenizer, set up for batched generation."""
    import torch
    from transformers import AutoModelForCausalLM

    from runners.model import load_pretrained_tokenizer

    tokenizer = load_pretrained_tokenizer(model_path)
    if torch.cuda.is_available():
        dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        model = AutoModelForCausalLM.from_pretrained(str(model_path), dtype=dtype).to("cuda")
    else:
        model = AutoModelForCausalLM.from_pretrained(str(model_path))
    return model, tokenizer


def completion_from_tokens(
    tokens: Sequence[int],
    tokenizer: PreTrainedTokenizerBase,
    eos_ids: Sequence[int],
    stop: Sequence[str],
) -> Completion:
    """A Completion from one row of generated tokens (maybe EOS, then padding)."""
    ends = [i for i, token in enumerate(tokens) if token in eos_ids]
    content = list(tokens[: ends[0]] if ends else tokens)
    text = tokenizer.decode(content, skip_special_tokens=True)
    cut = _first_stop(text, stop)
    if cut is not None:
        return Completion(text[:cut], _tokens_until_stop(content, tokenizer, stop), True)
    if ends:
        return Completion(text, ends[0] + 1, True)
    # Padding without EOS: another stopping rule ended the row early; count what was generated.
    pad = tokenizer.pad_token_id
    while content and content[-1] == pad:
        content.pop()
    return Completion(text, len(content), False)


def _first_stop(text: str, stop: Sequence[str]) -> int | None:
    """Where the earliest stop string starts in text, or None."""
    found = [i for i in (text.find(s) for s in stop) if i >= 0]
    return min(found) if found else None


def _tokens_until_stop(
    tokens: Sequence[int], tokenizer: PreTrainedTokenizerBase, stop: Sequence[str]
) -> int:
    """The fewest leading tokens whose text contains a stop string (binary search: a longer
    prefix decodes to a longer text)."""
    low, high = 1, len(tokens)
    while low < high:
        middle = (low + high) // 2
        text = tokenizer.decode(tokens[:middle], skip_special_tokens=True)
        if _first_stop(text, stop) is None:
            low = middle + 1
        else:
            high = middle
    return high


# Knobs that a model's generation_config.json would otherwise set for `generate` (transformers
# even defaults to top_k=50); vLLM given explicit SamplingParams uses none of them.
NEUTRAL_KNOBS = {"repetition_penalty": 1.0, "no_repeat_ngram_size": 0}
NEUTRAL_SAMPLING_KNOBS = {"top_k": 0, "typical_p": 1.0, "min_p": 0.0}


def _sample_transformers(
    config: SamplingConfig,
    prompts: list[str],
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    seeds: Sequence[int] | None = None,
    groups: Sequence[Any] | None = None,
) -> list[list[Completion]]:
    import torch

    eos_ids = _eos_ids(model, tokenizer)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else eos_ids[0]
    sampling = config.temperature > 0
    knobs: dict[str, Any] = dict(NEUTRAL_KNOBS, do_sample=sampling)
    if sampling:
        knobs.update(NEUTRAL_SAMPLING_KNOBS, temperature=config.temperature, top_p=config.top_p)
    if sampling and seeds is not None:
        # The rows' own streams pick the token (_row_streams); generate's multinomial then
        # draws from a distribution with all its mass on it.
        knobs.update(temperature=1.0, top_p=1.0)

    was_training = model.training
    model.eval()
    results: list[list[Completion]] = []
    # A private random stream: sampling inside training must not move the trainer's RNG.
    cuda = [model.device.index or 0] if model.device.type == "cuda" else []
    try:
        with torch.random.fork_rng(devices=cuda), torch.inference_mode():
            torch.manual_seed(config.seed)  # all devices, CUDA included
            for start, stop in batches(len(prompts), config.batch_size, groups):
                batch = prompts[start:stop]
                input_ids, attention_mask = _left_padded(tokenizer, batch, pad_id, model.device)
                # Rows end at a stop string, not at max_tokens: base models rarely emit EOS
                # after a few-shot prompt and would otherwise run to the limit.
                stopping = _stop_strings_criteria(tokenizer, config.stop, input_ids.shape[1])
                streams = None
                if sampling and seeds is not None:
                    streams = _row_streams(config, seeds[start:stop])
                output = model.generate(
                    input_ids=input_ids,
                    attention_mask=attention_mask,
                    max_new_tokens=config.max_tokens,
                    num_return_sequences=config.n,
                    pad_token_id=pad_id,
                    eos_token_id=eos_ids,
                    stopping_criteria=stopping,
                    logits_processor=streams,
                    **knobs,
                )
                rows = output[:, input_ids.shape[1] :].tolist()  # prompt i's samples are adjacent
                completions = [
                    completion_from_tokens(row, tokenizer, eos_ids, config.stop) for row in rows
                ]
                results += [
                    completions[i : i + config.n] for i in range(0, len(completions), config.n)
                ]
    finally:
        model.train(was_training)
    return results


def batches(count: int, size: int, groups: Sequence[Any] | None = None) -> list[tuple[int, int]]:
    """(start, stop) of each batch of `count` prompts: `size` at most, cut where `groups`
    changes from one prompt to the next."""
    cuts = [0]
    for i in range(1, count):
        if i - cuts[-1] >= size or (groups is not None and groups[i] != groups[i - 1]):
            cuts.append(i)
    return [(a, b) for a, b in zip(cuts, [*cuts[1:], count], strict=True) if a < b]


def _row_streams(config: SamplingConfig, seeds: Sequence[int]) -> Any:
    """Logits processors that draw each row's next token from the row's own stream (row j of
    prompt i: seeded by seeds[i] and j) out of the distribution generate would sample
    (temperature, then top_p, as generate applies them), and leave only that token."""
    import torch
    from transformers import (
        LogitsProcessor,
        LogitsProcessorList,
        TemperatureLogitsWarper,
        TopPLogitsWarper,
    )

    class RowStreams(LogitsProcessor):
        def __init__(self) -> None:
            self.streams = [
                torch.Generator().manual_seed(prompt_seed(seed, j))
                for seed in seeds
                for j in range(config.n)
            ]

        def __call__(self, input_ids: Any, scores: Any) -> Any:
            draws = torch.cat([torch.rand(1, generator=g) for g in self.streams])
            cumulative = torch.softmax(scores, dim=-1).cumsum(dim=-1)
            targets = draws.to(scores.device).unsqueeze(1) * cumulative[:, -1:]
            chosen = torch.searchsorted(cumulative, targets, right=True)
            chosen = chosen.clamp_(max=scores.shape[-1] - 1)
            only = torch.full_like(scores, float("-inf"))
            return only.scatter_(1, chosen, 0.0)

    warpers: list[Any] = []
    if config.temperature != 1.0:
        warpers.append(TemperatureLogitsWarper(config.temperature))
    if config.top_p < 1.0:
        warpers.append(TopPLogitsWarper(config.top_p))
    return LogitsProcessorList([*warpers, RowStreams()])


def _stop_strings_criteria(
    tokenizer: PreTrainedTokenizerBase, stop: Sequence[str], prompt_width: int
) -> Any:
    """Stopping criteria that end a row once its generated text contains a stop string, or
    None without stop strings.

    Not `generate(stop_strings=...)`: that also matches a stop string that begins in the
    prompt, which vLLM does not. Only the last tokens are decoded at each step: a stop string
    of L characters (at most 4L bytes) spans at most 4L byte-level tokens; 8 more are slack for
    tokens that decode to nothing.
    """
    if not stop:
        return None
    from transformers import StoppingCriteria, StoppingCriteriaList

    window = 4 * max(len(s) for s in stop) + 8

    class StopStrings(StoppingCriteria):
        def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> Any:
            import torch

            generated = input_ids[:, prompt_width:]
            tails = tokenizer.batch_decode(generated[:, -window:], skip_special_tokens=True)
            found = [_first_stop(tail, stop) is not None for tail in tails]
            return torch.tensor(found, dtype=torch.bool, device=input_ids.device)

    return StoppingCriteriaList([StopStrings()])


def _eos_ids(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase) -> list[int]:
    """The tokenizer's EOS first, then any other that generation_config.json names (chat models
    often end a turn with a token other than the tokenizer's EOS)."""
    configured = model.generation_config.eos_token_id
    if configured is None:
        configured = []
    elif isinstance(configured, int):
        configured = [configured]
    ids = [tokenizer.eos_token_id, *configured]
    return list(dict.fromkeys(i for i in ids if i is not None))


def _left_padded(
    tokenizer: PreTrainedTokenizerBase, prompts: list[str], pad_id: int, device: Any
) -> tuple[Any, Any]:
    """input_ids and attention_mask with the padding on the left, whatever side the tokenizer
    pads (a training tokenizer may pad right), without changing the tokenizer."""
    import torch

    encoded = tokenizer(prompts)["input_ids"]
    width = max(len(ids) for ids in encoded)
    input_ids = [[pad_id] * (width - len(ids)) + ids for ids in encoded]
    mask = [[0] * (width - len(ids)) + [1] * len(ids) for ids in encoded]
    return torch.tensor(input_ids, device=device), torch.tensor(mask, device=device)


def _sample_vllm(
    config: SamplingConfig,
    prompts: list[str],
    model_path: str | Path,
    seeds: Sequence[int] | None = None,
) -> list[list[Completion]]:
    from vllm import SamplingParams

    llm = _vllm_engine(json.dumps(vllm_engine_kwargs(config, model_path), sort_keys=True))
    params: Any = SamplingParams(**vllm_sampling_kwargs(config))
    if seeds is not None:
        params = [SamplingParams(**kwargs) for kwargs in vllm_request_kwargs(config, seeds)]
    outputs = llm.generate(prompts, params)
    # vLLM returns outputs in prompt order; "stop" covers EOS and stop strings, "length" the limit.
    return [
        [Completion(o.text, len(o.token_ids), o.finish_reason == "stop") for o in request.outputs]
        for request in outputs
    ]


@functools.lru_cache(maxsize=1)
def _vllm_engine(engine_kwargs: str) -> Any:
    """One engine per process and checkpoint: starting one takes a minute, and a stage that
    samples twice (greedy, then k samples) reuses it."""
    from vllm import LLM

    return LLM(**json.loads(engine_kwargs))
