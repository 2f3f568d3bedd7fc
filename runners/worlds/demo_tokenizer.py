"""A word-level tokenizer over the demo world's fixed vocabulary.

Every word of the world (numbers, names, symbols) is one token, so a step's arithmetic is one
prediction and the vocabulary is tiny (~60 tokens). Built with `tokenizers`, wrapped as a
`PreTrainedTokenizerFast` so that trl, `generate` and `save_pretrained`/`from_pretrained`
treat it like any Hugging Face tokenizer. Every encoding starts with <bos>.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from runners.worlds.demo import WorldConfig, vocabulary

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerFast

SPECIAL_TOKENS = {
    "pad_token": "<pad>",
    "bos_token": "<bos>",
    "eos_token": "<eos>",
    "unk_token": "<unk>",
}


def build_tokenizer(world: WorldConfig) -> PreTrainedTokenizerFast:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    specials = list(SPECIAL_TOKENS.values())
    vocab = {token: i for i, token in enumerate(specials + vocabulary(world))}
    core = Tokenizer(models.WordLevel(vocab=vocab, unk_token=SPECIAL_TOKENS["unk_token"]))
    core.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    core.decoder = decoders.WordPiece(prefix="##", cleanup=False)  # joins words with spaces
    core.post_processor = processors.TemplateProcessing(
        single="<bos> $A", special_tokens=[("<bos>", vocab["<bos>"])]
    )
    # Left padding: batched generation appends to the right end of every row.
    return PreTrainedTokenizerFast(tokenizer_object=core, padding_side="left", **SPECIAL_TOKENS)


def save_tokenizer(world: WorldConfig, out_dir: Path) -> None:
    build_tokenizer(world).save_pretrained(str(out_dir))


def load_tokenizer(path: Path) -> PreTrainedTokenizerFast:
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(path))
