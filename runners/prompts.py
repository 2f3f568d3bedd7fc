"""How a question becomes the text a model continues, shared by sampling and training.

Three styles: `plain` (the question through a template), `few_shot` (solved exemplars written
the same way, then the question) and `chat` (user/assistant turns rendered by the tokenizer's
chat template). Training data is built by `training_example` from the same `render_prompt`, so
a fine-tuned model sees exactly the prompt it is later sampled with.

BOS: a tokenizer that adds BOS when it encodes (Llama's do) would add a second one in front of
a chat template that writes `{{ bos_token }}` itself (Llama 3's does). Both trl and vLLM encode
a text prompt with special tokens, so the chat style drops the template's leading BOS text
when the tokenizer adds one: every backend then sees exactly one BOS.
"""

from __future__ import annotations

import string
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase


class PromptConfig(BaseModel):
    """How prompts are written; changes the text every stage after it sees."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    style: Literal["plain", "few_shot", "chat"] = "plain"
    """plain: the template alone; few_shot: solved exemplars first; chat: the chat template."""
    template: str = "{question}"
    """How one question is written; the only format field is {question}."""
    few_shot: int = Field(0, ge=0)
    """Solved exemplars before the question (styles few_shot and chat)."""
    separator: str = "\n\n"
    """Text between exemplars, and before the question, in the few_shot style."""
    system: str | None = None
    """System message (chat style only); None: no system turn."""

    @field_validator("template")
    @classmethod
    def _only_question_field(cls, template: str) -> str:
        try:
            parsed = list(string.Formatter().parse(template))
        except ValueError as error:  # an unmatched brace
            raise ValueError(f"template {template!r} is not a format string: {error}") from None
        fields = {name for _, name, _, _ in parsed if name is not None}
        if fields != {"question"}:
            raise ValueError(
                "template must contain {question} and no other format field (write a literal"
                f" brace as {{{{ or }}}}); got {template!r}"
            )
        return template

    @model_validator(mode="after")
    def _options_match_style(self) -> PromptConfig:
        if self.few_shot > 0 and self.style == "plain":
            raise ValueError(f"few_shot={self.few_shot} needs style few_shot or chat, not plain")
        if self.style == "few_shot" and self.few_shot == 0:
            raise ValueError("style few_shot needs few_shot > 0 (exemplars before the question)")
        if self.system is not None and self.style != "chat":
            raise ValueError(f"system is only used by style chat, not {self.style}")
        return self


def render_prompt(
    config: PromptConfig,
    question: str,
    exemplars: Sequence[Mapping[str, str]] = (),
    tokenizer: PreTrainedTokenizerBase | None = None,
) -> str:
    """The text the model continues for `question`. Exemplars have "prompt" (the question) and
    "solution"; the first `config.few_shot` are used. The chat style needs the tokenizer."""
    shots = _exemplars(config, exemplars)
    if config.style == "plain":
        return config.template.format(question=question)
    if config.style == "few_shot":
        solved = [config.template.format(question=ex["prompt"]) + ex["solution"] for ex in shots]
        return config.separator.join([*solved, config.template.format(question=question)])
    return _render_chat(config, question, shots, tokenizer)


def training_example(
    config: PromptConfig,
    question: str,
    solution: str,
    exemplars: Sequence[Mapping[str, str]] = (),
    tokenizer: PreTrainedTokenizerBase | None = None,
) -> dict[str, str]:
    """One prompt-completion record for trl's SFTTrainer, prompted as `render_prompt` does."""
    return {"prompt": render_prompt(config, question, exemplars, tokenizer), "completion": solution}


def _exemplars(
    config: PromptConfig, exemplars: Sequence[Mapping[str, str]]
) -> Sequence[Mapping[str, str]]:
    if len(exemplars) < config.few_shot:
        raise ValueError(f"few_shot={config.few_shot} but only {len(exemplars)} exemplars given")
    return exemplars[: config.few_shot]


def _render_chat(
    config: PromptConfig,
    question: str,
    shots: Sequence[Mapping[str, str]],
    tokenizer: PreTrainedTokenizerBase | None,
) -> str:
    if tokenizer is None:
        raise ValueError("style chat renders with the model's chat template: pass its tokenizer")
    if tokenizer.chat_template is None:
        raise ValueError(
            f"style chat needs a chat template, and tokenizer {tokenizer.name_or_path!r} has none;"
            " use style plain or few_shot for a base model"
        )
    messages: list[dict[str, Any]] = []
    if config.system is not None:
        messages.append({"role": "system", "content": config.system})
    for ex in shots:
        messages.append({"role": "user", "content": config.template.format(question=ex["prompt"])})
        messages.append({"role": "assistant", "content": ex["solution"]})
    messages.append({"role": "user", "content": config.template.format(question=question)})
    text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    bos = tokenizer.bos_token
    if bos and text.startswith(bos) and _adds_bos(tokenizer):
        text = text[len(bos) :]  # see the module docstring
    return text


def _adds_bos(tokenizer: PreTrainedTokenizerBase) -> bool:
    """Whether encoding text with special tokens puts BOS in front."""
    ids = tokenizer("x")["input_ids"]
    return bool(ids) and ids[0] == tokenizer.bos_token_id
