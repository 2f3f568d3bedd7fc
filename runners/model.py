"""Model construction: a tiny Llama built from a config, or (later) a pretrained checkpoint.

The demo model is randomly initialised from the training seed, so two seeds differ in both
initialisation and data order. Real models plug in through `name_or_path`.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict, Field

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase


class ModelConfig(BaseModel):
    """Architecture of the model to train; the defaults are the tuned demo model."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name_or_path: str | None = None
    """Hugging Face id or local folder to start from; None builds the tiny model below."""
    layers: int = Field(2, ge=1)
    """Transformer blocks."""
    hidden: int = Field(128, ge=8)
    """Residual stream width."""
    heads: int = Field(4, ge=1)
    """Attention heads (hidden must divide by it)."""
    intermediate: int = Field(256, ge=8)
    """MLP inner width."""
    max_positions: int = Field(160, ge=16)
    """Longest sequence (prompt + completion) in tokens."""


def build_model(
    config: ModelConfig, tokenizer: PreTrainedTokenizerBase, seed: int
) -> PreTrainedModel:
    """A causal LM matching `tokenizer`'s vocabulary and special tokens, seeded by `seed`."""
    import torch
    from transformers import AutoModelForCausalLM, LlamaConfig, LlamaForCausalLM

    if config.name_or_path is not None:
        # Pretrained weights: the seed only affects what follows (data order, dropout).
        return AutoModelForCausalLM.from_pretrained(config.name_or_path)
    if config.hidden % config.heads:
        raise ValueError(f"hidden={config.hidden} is not divisible by heads={config.heads}")
    architecture = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=config.hidden,
        intermediate_size=config.intermediate,
        num_hidden_layers=config.layers,
        num_attention_heads=config.heads,
        num_key_value_heads=config.heads,
        max_position_embeddings=config.max_positions,
        tie_word_embeddings=True,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    torch.manual_seed(seed)
    return LlamaForCausalLM(architecture)


def load_tokenizer_for(config: ModelConfig, data_dir: Path) -> PreTrainedTokenizerBase:
    """The demo world's word-level tokenizer (written by its generate step), or the pretrained
    model's, left-padded for batched generation and with a pad token."""
    from runners.worlds.demo_tokenizer import load_tokenizer

    if config.name_or_path is None:
        return load_tokenizer(data_dir / "tokenizer")
    return load_pretrained_tokenizer(config.name_or_path)


def load_pretrained_tokenizer(name_or_path: str | Path) -> PreTrainedTokenizerBase:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(name_or_path))
    tokenizer.padding_side = "left"
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def count_parameters(model: PreTrainedModel | None, checkpoint: str | Path) -> int:
    """Parameters of a loaded model, or of a checkpoint's architecture (built on the meta
    device, so nothing is allocated), shared weights counted once."""
    if model is None:
        from accelerate import init_empty_weights
        from transformers import AutoConfig, AutoModelForCausalLM

        with init_empty_weights():
            model = AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(str(checkpoint)))
        model.tie_weights()  # from_config on the meta device leaves tied embeddings apart
    return sum(parameter.numel() for parameter in model.parameters())


def tiny_parameter_count(config: ModelConfig, vocab_size: int) -> int:
    """Parameters of the tiny Llama `build_model` makes, without building it: tied embeddings,
    attention with as many key/value heads as heads, a gated MLP and RMSNorm weights."""
    hidden, inner = config.hidden, config.intermediate
    per_layer = 4 * hidden * hidden + 3 * hidden * inner + 2 * hidden
    return vocab_size * hidden + config.layers * per_layer + hidden
