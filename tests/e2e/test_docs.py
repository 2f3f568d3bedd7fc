"""Every example in README.md and docs/ still true: specs load, commands run, paths exist.

The docs are read as a user reads them: a fenced ```yaml block is a spec (or a part of one, merged
into a ready spec), a `scaler plan` or `scaler verify` line is run as written, a flag after
`scaler <command>` must be that command's, and a repository path or a dotted module name must
name something that is there. What needs results or a cluster (run, fit, query, ...) is only
checked for its flags. The examples run from a scratch folder holding `specs/`, the shared GSM8K
and MATH files as `data/` and the small files the examples name (mine.jsonl, preds.jsonl).
"""

from __future__ import annotations

import importlib
import json
import re
import shlex
import typing
from pathlib import Path

import pytest
import yaml
from omegaconf import OmegaConf
from pydantic import BaseModel

from conftest import SHARED_DATA
from scaler.cli import _parser, main
from scaler.errors import SpecError
from scaler.spec.load import load_spec
from scaler.spec.schema import Spec

ROOT = Path(__file__).resolve().parents[2]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
TEXTS = {doc.relative_to(ROOT).as_posix(): doc.read_text() for doc in DOCS}

FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.MULTILINE | re.DOTALL)
INLINE = re.compile(r"`([^`\n]+)`")
TOP_DIRS = "scaler|runners|analysis|specs|docs|tests|benchmarks|scripts"
REPO_PATH = re.compile(rf"(?<![\w./-])((?:{TOP_DIRS})/[\w.*/-]*)")
DOTTED = re.compile(r"^(?:scaler|runners|analysis)(?:\.\w+)+$")
FILE_SUFFIXES = {"duckdb", "json", "jsonl", "yaml", "md", "py", "parquet", "csv", "html"}
COMMANDS = _parser()._subparsers._group_actions[0].choices  # type: ignore[union-attr]


def code_lines(text: str) -> list[str]:
    """Lines a reader would type or copy: fenced and indented code, and inline code spans."""
    lines = [line for _, body in FENCE.findall(text) for line in body.splitlines()]
    prose = FENCE.sub("", text)
    lines += [line[4:] for line in prose.splitlines() if line.startswith("    ")]
    lines += INLINE.findall(prose)
    return lines


def scaler_lines() -> list[tuple[str, str]]:
    """(doc, line) for every code line that calls `scaler`, env assignments allowed before."""
    found = []
    for doc, text in TEXTS.items():
        for line in code_lines(text):
            match = re.search(r"(?:^|\s)((?:[A-Z_]+=\S+\s+)*scaler\s+[a-z]+.*)", line.strip())
            if match:
                found.append((doc, match.group(1)))
    return found


def _placeholder(token: str) -> bool:
    """SPEC, EXPERIMENT, [key=value ...], inline|local|slurm: a synopsis, not a command."""
    return (
        bool(re.fullmatch(r"\[?[A-Z][A-Z0-9_.]*\]?", token))
        or token.startswith("[")
        or ("|" in token)
    )


def runnable_commands() -> list[tuple[str, str]]:
    """`scaler plan` and `scaler verify` lines as written, with no placeholder in them."""
    commands = []
    for doc, line in scaler_lines():
        if not re.search(r"scaler\s+(plan|verify)\s", line):
            continue  # the others need results, a cluster, or a query spread over lines
        words = [t for t in shlex.split(line, comments=True) if not re.fullmatch(r"[A-Z_]+=\S+", t)]
        if not any(_placeholder(t) for t in words):
            commands.append((doc, line))
    return commands


@pytest.fixture
def scratch(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A folder to run the examples from: specs/, data/ (the shared files), a user's data file
    and a predictions file, with results kept inside it."""
    (tmp_path / "specs").symlink_to(ROOT / "specs")
    if SHARED_DATA.is_dir():
        (tmp_path / "data").symlink_to(SHARED_DATA)
    records = [{"question": "What is 1 + 1?", "solution": "1 + 1 = 2", "answer": "2"}]
    (tmp_path / "mine.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    (tmp_path / "preds.jsonl").write_text(json.dumps({"gold": "\\frac{1}{2}", "pred": "0.5"}))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SCALER_RESULTS", str(tmp_path / "results"))
    monkeypatch.setenv("SCALER_DATA", str(tmp_path / "data"))
    return tmp_path


def _needs_data(error: SpecError) -> None:
    """Skip an example whose data files are not on this machine (no shared GSM8K and MATH)."""
    if "no such file" in str(error) or "exceed the" in str(error):
        pytest.skip(f"names data not here: {error}")
    raise error


# ------------------------------------------------------------------------------ specs


def yaml_examples() -> list[tuple[str, int, str]]:
    return [
        (doc, i, body)
        for doc, text in TEXTS.items()
        for i, (lang, body) in enumerate(FENCE.findall(text))
        if lang == "yaml"
    ]


@pytest.mark.parametrize(
    "doc,index,body", yaml_examples(), ids=[f"{d}#{i}" for d, i, _ in yaml_examples()]
)
def test_yaml_example_is_a_spec_that_loads(doc, index, body, scratch: Path) -> None:
    example = yaml.safe_load(body)
    assert isinstance(example, dict), f"{doc}: a yaml block should be a spec or part of one"
    unknown = set(example) - set(Spec.model_fields)
    assert not unknown, f"{doc}: {sorted(unknown)} are not spec sections"
    if {"experiment", "world"} <= set(example):
        text = body
    else:
        # A part of a spec is read inside a ready one: the demo spec, or a GSM8K spec when the
        # part names a real world or a Hugging Face model.
        real = "name_or_path" in body or example.get("world", {}).get("name", "demo") != "demo"
        base = ROOT / "specs" / ("gsm8k-sft-scaling.yaml" if real else "demo.yaml")
        merged = OmegaConf.merge(OmegaConf.load(base), OmegaConf.create(body))
        text = OmegaConf.to_yaml(merged)
    path = scratch / f"example-{index}.yaml"
    path.write_text(text)
    try:
        load_spec(path)
    except SpecError as error:
        _needs_data(error)


def test_readme_first_spec_is_specs_demo(scratch: Path) -> None:
    (body,) = [b for lang, b in FENCE.findall(TEXTS["README.md"]) if "experiment: demo" in b]
    (scratch / "readme.yaml").write_text(body)
    shown = load_spec(scratch / "readme.yaml").model_dump()
    assert shown == load_spec(ROOT / "specs" / "demo.yaml").model_dump()


def test_slurm_resources_example_adds_up(scratch: Path) -> None:
    # A stage's resources override the default's and its sbatch options add to the default's.
    (readme,) = [b for lang, b in FENCE.findall(TEXTS["README.md"]) if "experiment: demo" in b]
    (slurm,) = [
        b for lang, b in FENCE.findall(TEXTS["docs/slurm.md"]) if lang == "yaml" and "default:" in b
    ]
    (scratch / "slurm.yaml").write_text(readme.split("resources:")[0] + slurm)
    on_slurm = load_spec(scratch / "slurm.yaml")
    train = on_slurm.resources_for("train")
    assert train.sbatch == {"constraint": "a100", "exclude": "node[07-08]"}
    assert on_slurm.resources_for("evaluate").partition == "cpu"


def _models(annotation) -> list[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [m for arg in typing.get_args(annotation) for m in _models(arg)]


def test_specs_reference_names_every_field() -> None:
    reference = TEXTS["docs/specs.md"]
    seen: set[type[BaseModel]] = set()
    todo, missing = [Spec], []
    while todo:
        model = todo.pop()
        if model in seen:
            continue
        seen.add(model)
        for name, info in model.model_fields.items():
            if not re.search(rf"(?<![\w]){name}(?![\w])", reference):
                missing.append(f"{model.__name__}.{name}")
            todo += _models(info.annotation)
    assert not missing, f"docs/specs.md does not name {missing}"


# --------------------------------------------------------------------------- commands


@pytest.mark.parametrize("doc,line", runnable_commands(), ids=[c for _, c in runnable_commands()])
def test_command_runs(doc, line, scratch: Path, monkeypatch, capsys) -> None:
    tokens = shlex.split(line, comments=True)
    shown = line.split("#", 1)[1].strip() if "#" in line.split("'")[-1] else None
    while re.fullmatch(r"[A-Z_]+=\S+", tokens[0]):
        name, value = tokens.pop(0).split("=", 1)
        value = value.replace("/data", str(scratch / "data"), 1)
        if not Path(value).exists() and name != "SCALER_DATA":
            pytest.skip(f"{name}: {value} is not here")
        monkeypatch.setenv(name, value)
    if ">" in tokens:
        tokens = tokens[: tokens.index(">")]
    try:
        main(tokens[1:])
    except SystemExit as exit:
        err = capsys.readouterr().err
        if exit.code and ("no such file" in err or "exceed the" in err):
            pytest.skip(f"names data not here: {err}")
        assert not exit.code, f"{doc}: `{line}` exited {exit.code}: {err}"
    out = capsys.readouterr().out
    if tokens[1] == "verify" and "--jsonl" not in tokens and shown:
        assert out.strip() == shown, f"{doc}: `{line}` prints {out.strip()!r}"


def test_documented_flags_are_real() -> None:
    wrong = []
    for doc, line in scaler_lines():
        command = re.search(r"scaler\s+([a-z]+)", line).group(1)
        if command not in COMMANDS:
            wrong.append(f"{doc}: `{line}`: no command {command!r}")
            continue
        options = COMMANDS[command]._option_string_actions
        code = line.split("#", 1)[0]
        for flag in re.findall(r"(?<![\w-])(--?[a-z][\w-]*)", code):
            if flag not in options:
                wrong.append(f"{doc}: `{line}`: scaler {command} has no {flag}")
    assert not wrong, "\n".join(wrong)


# ------------------------------------------------------------------------------ paths


def test_repository_paths_exist() -> None:
    missing = []
    for doc, text in TEXTS.items():
        for match in REPO_PATH.finditer(text):
            path = match.group(1).rstrip(".,:;")
            if text[match.end() : match.end() + 1] in "<{" or path.endswith("..."):
                continue  # a placeholder: results/<experiment>/, scaler/{spec,run}
            if not (list(ROOT.glob(path)) if "*" in path else (ROOT / path).exists()):
                missing.append(f"{doc}: {path}")
    assert not missing, "\n".join(missing)


def test_relative_links_exist() -> None:
    missing = []
    for doc, text in TEXTS.items():
        for target in re.findall(r"\]\(([^)\s#]+)", text):
            if (
                not re.match(r"\w+://", target)
                and not (ROOT / doc).parent.joinpath(target).exists()
            ):
                missing.append(f"{doc}: {target}")
    assert not missing, "\n".join(missing)


def _resolves(dotted: str) -> bool:
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        for attribute in parts[cut:]:
            if not hasattr(obj, attribute):
                return False
            obj = getattr(obj, attribute)
        return True
    return False


def _spec_field(dotted: str) -> bool:
    """`analysis.baseline` is the spec's field as well as a module path."""
    model: typing.Any = Spec
    for part in dotted.split("."):
        models = _models(model)
        if not models or part not in models[0].model_fields:
            return False
        model = models[0].model_fields[part].annotation
    return True


def test_dotted_names_resolve() -> None:
    missing = []
    for doc, text in TEXTS.items():
        for span in INLINE.findall(text):
            name = span.strip()
            if DOTTED.fullmatch(name) and name.rsplit(".", 1)[1] not in FILE_SUFFIXES:
                if not _resolves(name) and not _spec_field(name):
                    missing.append(f"{doc}: {name}")
    assert not missing, "\n".join(missing)
