"""A tiny Hugging Face checkpoint built on the spot, standing in for a real model in CPU tests.

Nothing can be downloaded here, and the code that samples from, prompts and fine-tunes real
models should still meet a real checkpoint folder: `make_tiny_model` writes one that
`AutoModelForCausalLM.from_pretrained` and `AutoTokenizer.from_pretrained` load like any
model from the Hub. The tokenizer is a byte-level BPE trained on the given texts (any string
can be encoded), adds <|bos|> to every encoding as Llama tokenizers do, and carries a chat
template that starts with the BOS token, as Llama 3's does, so the double-BOS case is covered.
The model is a randomly initialised Llama: its outputs are noise, but deterministic for a seed.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterable
from pathlib import Path

from conftest import SHARED_DATA as DATA

BOS, EOS, PAD = "<|bos|>", "<|eos|>", "<|pad|>"

CHAT_TEMPLATE = (
    "{{ bos_token }}"
    "{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}{{ eos_token }}{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>{% endif %}"
)
"""Role tags are plain text (learned by BPE), each turn ends with EOS, as in common templates."""

FALLBACK_TEXTS = [
    "Natalia sold 48 clips in April and half as many in May. How many clips did she sell?",
    "Natalia sold 48/2 = 24 clips in May.\nShe sold 48+24 = 72 clips altogether.\n#### 72",
    "Weng earns $12 an hour for babysitting. She did 50 minutes. How much did she earn?",
    "Weng earns 12/60 = $0.2 per minute.\nWorking 50 minutes, she earned 0.2 x 50 = $10.\n#### 10",
    "Question: What is 3 + 4?\nAnswer: 3 + 4 = 7\n#### 7",
]
"""GSM8K-like lines for when the shared data is absent."""


def gsm8k_texts(limit: int) -> list[str]:
    """Up to `limit` GSM8K train problems as "question\\nanswer" texts, or a few built-in
    GSM8K-like lines when the shared data folder is absent."""
    path = DATA / "gsm8k" / "train.jsonl"
    if not path.is_file():
        return FALLBACK_TEXTS[:limit]
    with path.open() as lines:
        records = [json.loads(line) for line in itertools.islice(lines, limit)]
    return [f"{r['question']}\n{r['answer']}" for r in records]


def make_tiny_model(
    out_dir: Path,
    texts: Iterable[str],
    vocab_size: int = 400,
    layers: int = 2,
    hidden: int = 64,
    heads: int = 4,
    seed: int = 0,
) -> Path:
    """Train a tokenizer on `texts`, build a random Llama for it, save both into out_dir (a
    Hugging Face checkpoint folder) and return out_dir."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    core = Tokenizer(models.BPE())
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    core.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=[BOS, EOS, PAD],
        # Every byte is in the vocabulary, so text unseen in training still encodes.
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    core.train_from_iterator(texts, trainer)
    core.post_processor = processors.TemplateProcessing(
        single=f"{BOS} $A", special_tokens=[(BOS, core.token_to_id(BOS))]
    )
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=core, bos_token=BOS, eos_token=EOS, pad_token=PAD, padding_side="left"
    )
    tokenizer.chat_template = CHAT_TEMPLATE

    architecture = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden,
        intermediate_size=2 * hidden,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=heads,
        max_position_embeddings=1024,
        tie_word_embeddings=True,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    # A private RNG stream: building a model must not move the caller's random state.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = LlamaForCausalLM(architecture)

    out_dir = Path(out_dir)
    model.save_pretrained(str(out_dir))
    tokenizer.save_pretrained(str(out_dir))
    return out_dir
