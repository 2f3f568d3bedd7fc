"""Batched greedy decoding shared by training (validation) and the evaluate stage.

A thin wrapper over `runners.decoding.sample` with a greedy config, kept for its callers.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from runners.decoding import SamplingConfig, sample

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase


def greedy_completions(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    prompts: list[str],
    batch_size: int,
    max_new_tokens: int,
) -> list[str]:
    """The greedy completion of every prompt, decoded without special tokens."""
    config = SamplingConfig(max_tokens=max_new_tokens, batch_size=batch_size)
    return [c.text for [c] in sample(config, prompts, model=model, tokenizer=tokenizer)]
