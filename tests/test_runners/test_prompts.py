"""Prompt rendering: every style on hand-made inputs, the config's checks, chat on a real
tokenizer (the tiny checkpoint's) with its BOS handling."""

from __future__ import annotations

import copy

import pytest
from pydantic import ValidationError
from tiny_hf_model import gsm8k_texts, make_tiny_model

from runners.prompts import PromptConfig, render_prompt, training_example

EXEMPLARS = [
    {"prompt": "1 + 1?", "solution": "2"},
    {"prompt": "2 + 3?", "solution": "5"},
    {"prompt": "never shown", "solution": "x"},
]


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory):
    from transformers import AutoTokenizer

    path = make_tiny_model(tmp_path_factory.mktemp("tiny"), gsm8k_texts(100))
    return AutoTokenizer.from_pretrained(str(path))


def test_plain_writes_the_question_through_the_template():
    config = PromptConfig(template="Question: {question}\nAnswer:")
    assert render_prompt(config, "What is 4 + 4?") == "Question: What is 4 + 4?\nAnswer:"
    assert render_prompt(PromptConfig(), "What is 4 + 4?") == "What is 4 + 4?"


def test_literal_braces_survive_the_template():
    config = PromptConfig(template="{{x}} {question}")
    assert render_prompt(config, "q") == "{x} q"


def test_few_shot_puts_solved_exemplars_first():
    config = PromptConfig(style="few_shot", few_shot=2, template="Q: {question}\nA: ")
    assert render_prompt(config, "4 + 4?", EXEMPLARS) == (
        "Q: 1 + 1?\nA: 2\n\nQ: 2 + 3?\nA: 5\n\nQ: 4 + 4?\nA: "
    )


def test_few_shot_separator():
    config = PromptConfig(style="few_shot", few_shot=1, separator="\n###\n")
    assert render_prompt(config, "4 + 4?", EXEMPLARS) == "1 + 1?2\n###\n4 + 4?"


def test_too_few_exemplars():
    config = PromptConfig(style="few_shot", few_shot=4)
    with pytest.raises(ValueError, match="few_shot=4 but only 3 exemplars"):
        render_prompt(config, "q", EXEMPLARS)


def test_training_example_uses_the_sampling_prompt():
    config = PromptConfig(style="few_shot", few_shot=1, template="Q: {question}\nA: ")
    assert training_example(config, "4 + 4?", "8", EXEMPLARS) == {
        "prompt": "Q: 1 + 1?\nA: 2\n\nQ: 4 + 4?\nA: ",
        "completion": "8",
    }


def test_chat_renders_turns_with_the_chat_template(tokenizer):
    config = PromptConfig(style="chat", few_shot=1, template="Q: {question}", system="Be brief.")
    prompt = render_prompt(config, "4 + 4?", EXEMPLARS, tokenizer)
    # The template writes <|bos|> first; the tokenizer adds its own, so the text drops it.
    assert prompt == (
        "<|system|>Be brief.<|eos|><|user|>Q: 1 + 1?<|eos|><|assistant|>2<|eos|>"
        "<|user|>Q: 4 + 4?<|eos|><|assistant|>"
    )
    ids = tokenizer(prompt)["input_ids"]
    assert ids[0] == tokenizer.bos_token_id and ids.count(tokenizer.bos_token_id) == 1
    example = training_example(config, "4 + 4?", "8", EXEMPLARS, tokenizer)
    assert example == {"prompt": prompt, "completion": "8"}


def test_chat_without_exemplars_or_system(tokenizer):
    prompt = render_prompt(PromptConfig(style="chat"), "Hi", tokenizer=tokenizer)
    assert prompt == "<|user|>Hi<|eos|><|assistant|>"


def test_chat_keeps_bos_when_the_tokenizer_adds_none(tokenizer):
    no_bos = copy.deepcopy(tokenizer)
    no_bos.add_bos_token = False
    assert no_bos("x")["input_ids"][0] != no_bos.bos_token_id
    prompt = render_prompt(PromptConfig(style="chat"), "Hi", tokenizer=no_bos)
    assert prompt == "<|bos|><|user|>Hi<|eos|><|assistant|>"


def test_chat_needs_a_tokenizer_with_a_chat_template(tokenizer):
    config = PromptConfig(style="chat")
    with pytest.raises(ValueError, match="pass its tokenizer"):
        render_prompt(config, "q")
    base = copy.deepcopy(tokenizer)
    base.chat_template = None
    with pytest.raises(ValueError, match="needs a chat template"):
        render_prompt(config, "q", tokenizer=base)


@pytest.mark.parametrize(
    "template, message",
    [
        ("no field", "template must contain {question}"),
        ("{q}", "template must contain {question}"),
        ("{question} {answer}", "template must contain {question}"),
        ("{} {question}", "template must contain {question}"),
        ("{0}", "template must contain {question}"),
        ("{question.real}", "template must contain {question}"),
        ("{question", "not a format string"),
    ],
)
def test_template_checks(template, message):
    with pytest.raises(ValidationError, match=message):
        PromptConfig(template=template)


@pytest.mark.parametrize(
    "fields, message",
    [
        ({"few_shot": 2}, "needs style few_shot or chat, not plain"),
        ({"style": "few_shot"}, "style few_shot needs few_shot > 0"),
        ({"style": "few_shot", "few_shot": 1, "system": "s"}, "only used by style chat"),
        ({"system": "s"}, "only used by style chat"),
        ({"few_shot": -1}, "greater than or equal to 0"),
        ({"style": "json"}, "style"),
        ({"shots": 2}, "Extra inputs are not permitted"),
    ],
)
def test_config_checks(fields, message):
    with pytest.raises(ValidationError, match=message):
        PromptConfig(**fields)


def test_config_is_frozen():
    config = PromptConfig(style="chat", few_shot=3, system="s")
    with pytest.raises(ValidationError):
        config.few_shot = 1  # type: ignore[misc]
