"""The real world on CPU: GSM8K and MATH files, a user's own data, a Hugging Face checkpoint.

The data is the real GSM8K and MATH-500 from the shared folder (skipped with the reason where it
is absent); the model is a tiny Llama with a BPE tokenizer built on the spot and loaded from its
folder like any Hub checkpoint (nothing can be downloaded here). Its answers are noise; the
stages that read, verify, train, sample and judge are the real ones.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from tiny_hf_model import DATA, gsm8k_texts, make_tiny_model

from conftest import ROOT, open_db, write_spec
from runners.files import read_jsonl
from runners.readers import fingerprint
from runners.stages import prepare, source, train, verify
from scaler.layout import Layout
from scaler.store import query

GSM8K = DATA / "gsm8k"
MATH = DATA / "math"
needs_data = pytest.mark.skipif(
    not (GSM8K / "train.jsonl").is_file(),
    reason=f"no shared data at {DATA}; set SCALER_SHARED_DATA to the shared data folder",
)
pytestmark = needs_data


def head(path: Path, lines: int, out: Path) -> Path:
    with path.open() as f:
        out.write_text("".join(next(f) for _ in range(lines)))
    return out


def prepare_config(train: Path, evals: dict[str, Path], kind="gsm8k", **settings) -> prepare.Config:
    paths = {"train": train, **evals}
    return prepare.Config(
        kind=kind,
        train=str(train),
        eval_files={name: str(path) for name, path in evals.items()},
        checksums={name: fingerprint(path) for name, path in paths.items()},
        **settings,
    )


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory) -> Path:
    return make_tiny_model(tmp_path_factory.mktemp("model") / "tiny-llama", gsm8k_texts(300))


@pytest.fixture(scope="module")
def small_gsm8k(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("gsm8k")
    return {
        "train": head(GSM8K / "train.jsonl", 80, folder / "train.jsonl"),
        "test": head(GSM8K / "test.jsonl", 12, folder / "test.jsonl"),
    }


def test_prepare_holds_out_val_and_exemplars_in_one_seeded_order(tmp_path):
    config = prepare_config(
        GSM8K / "train.jsonl", {"test": GSM8K / "test.jsonl"}, val_problems=200, few_shot=4
    )
    metrics = prepare.run(config, {}, tmp_path / "a")
    assert metrics == {
        "val": 200, "fewshot": 4, "train": 7473 - 204, "test": 1319, "test_in_train": 0,
    }  # fmt: skip
    train_rows = read_jsonl(tmp_path / "a" / "train.jsonl")
    assert [r["id"] for r in train_rows] == list(range(len(train_rows)))
    assert not any("<<" in r["solution"] for r in train_rows)  # annotations stripped
    for r in train_rows + read_jsonl(tmp_path / "a" / "test.jsonl"):
        # The solution keeps its "#### 1,450,000" line; the gold loses the separators.
        assert r["solution"].rsplit("####", 1)[1].strip().replace(",", "") == r["answer"]
    test_rows = read_jsonl(tmp_path / "a" / "test.jsonl")
    assert [r["row"] for r in test_rows] == list(range(1, 1320))  # eval sets keep file order
    assert sum("," in r["solution"].rsplit("####", 1)[1] for r in test_rows) == 14

    held = {
        r["prompt"]
        for name in ("val", "fewshot")
        for r in read_jsonl(tmp_path / "a" / f"{name}.jsonl")
    }
    assert not held & {r["prompt"] for r in train_rows}
    again = prepare.run(config, {}, tmp_path / "b")
    assert again == metrics
    for name in ("train", "val", "fewshot"):
        assert (tmp_path / "a" / f"{name}.jsonl").read_bytes() == (
            tmp_path / "b" / f"{name}.jsonl"
        ).read_bytes()
    prepare.run(config.model_copy(update={"seed": 1}), {}, tmp_path / "c")
    assert read_jsonl(tmp_path / "c" / "train.jsonl", 5) != train_rows[:5]


def test_prepare_reads_math500_golds(tmp_path):
    config = prepare_config(MATH / "test.jsonl", {"math500": MATH / "test.jsonl"}, kind="math",
                            val_problems=50)  # fmt: skip
    metrics = prepare.run(config, {}, tmp_path)
    assert metrics["math500"] == 500 and metrics["train"] == 450
    assert metrics["math500_in_train"] == 450  # the contamination check sees the overlap
    rows = read_jsonl(tmp_path / "math500.jsonl")
    records = [json.loads(line) for line in (MATH / "test.jsonl").open()]
    assert [r["answer"] for r in rows] == [r["answer"] for r in records]
    assert {r["subject"] for r in rows} >= {"Algebra", "Precalculus"}


def test_a_local_datasets_copy_reads_like_the_jsonl(tmp_path, small_gsm8k):
    from datasets import Dataset

    saved = tmp_path / "saved"
    Dataset.from_json(str(small_gsm8k["train"])).save_to_disk(str(saved))
    parquet = tmp_path / "train.parquet"
    Dataset.from_json(str(small_gsm8k["train"])).to_parquet(str(parquet))
    # A Hub dataset's files as a local folder: the split is picked by name.
    hub = tmp_path / "hub"
    hub.mkdir()
    Dataset.from_json(str(small_gsm8k["train"])).to_parquet(
        str(hub / "train-00000-of-00001.parquet")
    )
    Dataset.from_json(str(small_gsm8k["test"])).to_parquet(str(hub / "test-00000-of-00001.parquet"))
    variants = {"jsonl": small_gsm8k["train"], "saved": saved, "parquet": parquet, "hub": hub}
    outputs = {}
    for name, path in variants.items():
        prepare.run(prepare_config(path, {"test": small_gsm8k["test"]}, val_problems=10), {},
                    tmp_path / name)  # fmt: skip
        outputs[name] = (tmp_path / name / "train.jsonl").read_text()
    assert outputs["jsonl"] == outputs["saved"] == outputs["parquet"] == outputs["hub"]


def test_data_changed_since_the_plan_is_refused(tmp_path, small_gsm8k):
    train_file = shutil.copy(small_gsm8k["train"], tmp_path / "train.jsonl")
    config = prepare_config(Path(train_file), {"test": small_gsm8k["test"]}, val_problems=10)
    with Path(train_file).open("a") as f:
        f.write(Path(small_gsm8k["test"]).read_text().splitlines()[0] + "\n")
    with pytest.raises(ValueError, match="changed since it was planned"):
        prepare.run(config, {}, tmp_path / "out")


def write_user_data(path: Path, records: list[dict], broken: dict[int, str]) -> Path:
    """JSONL with `broken[line]` written verbatim at those (1-based) lines."""
    lines, queue = [], list(records)
    for number in range(1, len(records) + len(broken) + 1):
        lines.append(broken[number] if number in broken else json.dumps(queue.pop(0)))
    path.write_text("\n".join(lines) + "\n")
    return path


def user_records(count: int) -> list[dict]:
    records = [json.loads(line) for line in (GSM8K / "train.jsonl").open()][:count]
    gold = [r["answer"].rsplit("####", 1)[1].strip().replace(",", "") for r in records]
    return [
        {"question": r["question"], "solution": r["answer"], "answer": g}
        for r, g in zip(records, gold, strict=True)
    ]


def test_user_data_bad_records_are_counted_and_wrong_solutions_filtered(tmp_path):
    records = user_records(40)
    wrong = [4, 9, 15, 22, 30]  # their solutions end in a wrong answer
    for i in wrong:
        body = records[i]["solution"].rsplit("####", 1)[0]
        records[i]["solution"] = f"{body}#### {int(records[i]['answer']) + 1}"
    second = {**records[5], "solution": records[5]["solution"] + "\nSo the answer is clear."}
    contradicting = {**records[6], "answer": "123456"}
    records += [second, contradicting]
    broken = {3: "{not json", 7: "[1, 2]", 11: json.dumps({"question": "q", "answer": "1"})}
    path = write_user_data(tmp_path / "mine.jsonl", records, broken)
    config = source.Config(path=str(path), checksum=fingerprint(path), max_bad_fraction=0.1)

    metrics = source.run(config, {}, tmp_path / "source")
    assert metrics == {"records": 45, "bad_records": 4, "problems": 40, "solutions": 41}
    bad = read_jsonl(tmp_path / "source" / "bad_records.jsonl")
    assert [b["row"] for b in bad] == [3, 7, 11, 45]
    assert "not valid JSON" in bad[0]["problem"] and "not a JSON object" in bad[1]["problem"]
    assert "missing field 'solution'" in bad[2]["problem"]
    assert "differs from" in bad[3]["problem"]

    judged = verify.run(verify.Config(world="gsm8k"), {"candidates": tmp_path / "source"},
                        tmp_path / "verify")  # fmt: skip
    assert judged["candidates"] == 41 and judged["correct"] == 36 and judged["kept"] == 36
    assert judged["reasons"] == {"equivalent": 36, "mismatch": 5}
    samples = pq.read_table(tmp_path / "verify" / "samples.parquet").to_pylist()
    wrong_questions = {records[i]["question"] for i in wrong}
    candidates = read_jsonl(tmp_path / "source" / "candidates.jsonl")
    for sample, candidate in zip(samples, candidates, strict=True):
        assert sample["correct"] == (candidate["prompt"] not in wrong_questions)
        assert sample["false_positive"] is None  # unknown on real data without a judge
    kept = read_jsonl(tmp_path / "verify" / "train.jsonl")
    assert [r["id"] for r in kept] == sorted(r["id"] for r in kept)
    assert json.loads((tmp_path / "verify" / "pool.json").read_text()) == {"problems": 40}

    strict = config.model_copy(update={"max_bad_fraction": 0.05})
    with pytest.raises(ValueError, match="4 of 45 records are bad.*line 3: not valid JSON"):
        source.run(strict, {}, tmp_path / "strict")


def gsm8k_spec(tmp_path: Path, files: dict[str, Path], model: Path, **changes) -> dict:
    spec = {
        "experiment": "gsm8k-small",
        "world": {
            "name": "gsm8k",
            "train": str(files["train"]),
            "eval_files": {"test": str(files["test"])},
            "val_problems": 8,
        },
        "model": {"name_or_path": str(model), "max_positions": 384},
        "prompt": {"template": "Question: {question}\nAnswer:\n"},
        "sizes": [16, 32],
        "seeds": [0],
        "eval_sets": ["test"],
        "stages": {
            "train": {
                "min_steps": 3, "max_steps": 3, "eval_every": 3, "val_problems": 4,
                "batch_size": 8, "max_new_tokens": 16, "lr": 1e-3,
            },
            "evaluate": {"max_new_tokens": 16, "samples": 3, "temperature": 1.0},
        },
        "executor": {"name": "inline"},
    }  # fmt: skip
    return spec | changes


def test_gsm8k_grid_runs_end_to_end_and_lands_in_duckdb(tmp_path, results, cli, small_gsm8k,
                                                         tiny_model):  # fmt: skip
    user = write_user_data(tmp_path / "mine.jsonl", user_records(40), {})
    sources = ["teacher", {"name": "mine", "path": str(user), "max_bad_fraction": 0.0}]
    spec = write_spec(tmp_path / "g.yaml", gsm8k_spec(tmp_path, small_gsm8k, tiny_model,
                                                      sources=sources))  # fmt: skip
    ran = cli(f"run {spec}")
    assert ran.code == 0, ran.err
    con = open_db(results, "gsm8k-small")
    stages = dict(con.execute("SELECT stage, count(*) FROM steps GROUP BY stage").fetchall())
    assert stages == {"prepare": 1, "source": 1, "verify": 1, "train": 4, "evaluate": 4}
    rows = con.execute(
        "SELECT source, size, count(*), count(pass_at_k), sum(n_samples) FROM eval_problems "
        "JOIN steps USING (step_id) GROUP BY ALL ORDER BY ALL"
    ).fetchall()
    assert rows == [(s, n, 12, 12, 36) for s in ("mine", "teacher") for n in (16, 32)]
    per_stage = dict(con.execute(
        "SELECT stage, count(*) FROM samples JOIN steps USING (step_id) GROUP BY stage"
    ).fetchall())  # fmt: skip
    assert per_stage == {"verify": 40, "evaluate": 4 * 12 * 3}
    verified = con.execute(
        "SELECT count(*) FILTER (correct AND reason = 'equivalent') FROM samples "
        "JOIN steps USING (step_id) WHERE stage = 'verify'"
    ).fetchone()
    assert verified == (40,)  # GSM8K's own solutions all verify against their golds
    evals = con.execute("SELECT count(*), count(pass_at_k), count(maj_at_k) FROM evals").fetchone()
    assert evals == (4, 4, 4)
    con.close()
    texts = query(Layout(results / "gsm8k-small"), "SELECT count(text) FROM sample_texts "
                  "JOIN steps USING (step_id) WHERE stage = 'verify'")[1]  # fmt: skip
    assert texts == [(40,)]
    again = cli(f"plan {spec}")
    assert again.code == 0 and "0 to run" in again.out


def test_every_algorithm_runs_on_gsm8k_with_a_hub_style_model(tmp_path, results, cli,
                                                             small_gsm8k, tiny_model):  # fmt: skip
    # The real world's paths: samples judged by answer equivalence, solutions cut at lines,
    # a checkpoint named by path sampled as it is with a budget from its given size.
    from runners.model import count_parameters

    params = count_parameters(None, tiny_model)
    sampler = {
        "name": "hub",
        "model": {"name_or_path": str(tiny_model)},
        "params": params,
        "budget": {"flops_per_problem": 2 * params * 16 * 2, "tokens_per_sample": 16},
    }
    stages = gsm8k_spec(tmp_path, small_gsm8k, tiny_model)["stages"] | {
        "dpo_train": {"min_steps": 2, "max_steps": 2, "eval_every": 2, "val_problems": 4,
                      "batch_size": 4, "max_new_tokens": 16},
        "sample": {"samples": 2, "max_new_tokens": 16, "temperature": 1.0},
        "rollout": {"rollouts": 2, "max_new_tokens": 16, "temperature": 1.0},
        "build": {"rft": {"pool": ["hub"]}},
    }  # fmt: skip
    spec = write_spec(tmp_path / "g.yaml", gsm8k_spec(
        tmp_path, small_gsm8k, tiny_model, sources=["teacher", sampler], sizes=[8],
        algorithms=["sft", "rft", "dpo", "per_step_dpo"], stages=stages))  # fmt: skip
    ran = cli(f"run {spec}")
    assert ran.code == 0, ran.err
    with open_db(results, "gsm8k-small") as con:
        arms = con.execute("SELECT source, algorithm FROM evals ORDER BY ALL").fetchall()
        assert arms == sorted((s, a) for s in ("hub", "teacher")
                              for a in ("dpo", "per_step_dpo", "rft", "sft"))  # fmt: skip
        # The budget buys 2 samples of the 8 problems; their cost is counted, and the
        # false-positive column stays empty without a step-level judge.
        hub = con.execute(
            "SELECT k, problems, params, sampling_flops > 0, false_positive_rate FROM "
            "data_metrics WHERE candidates_id IN (SELECT step_id FROM steps WHERE stage = "
            "'sample' AND config->>'$.name_or_path' IS NOT NULL)"
        ).fetchall()
        assert hub == [(2, 8, params, True, None)]
        reasons = con.execute(
            "SELECT count(*), count(reason) FROM samples JOIN steps USING (step_id) "
            "WHERE stage = 'verify'"
        ).fetchone()
        assert reasons[0] == reasons[1] > 0
        pits = con.execute("SELECT count(*), count(true_pit) FROM pits").fetchone()
        assert pits[1] == 0  # no step truth in a real world
    again = cli(f"plan {spec}")
    assert again.code == 0 and "0 to run" in again.out


def test_lora_training_saves_a_merged_checkpoint(tmp_path, small_gsm8k, tiny_model):
    import torch
    from transformers import AutoModelForCausalLM

    data = tmp_path / "data"
    prepare.run(prepare_config(small_gsm8k["train"], {"test": small_gsm8k["test"]},
                               val_problems=4), {}, data)  # fmt: skip
    config = train.Config(
        model={"name_or_path": str(tiny_model), "max_positions": 384},
        world="gsm8k", size=16, batch_size=8, micro_batch_size=4, lr=1e-2,
        min_steps=2, max_steps=2, eval_every=2, val_problems=4, max_new_tokens=8, keep="last",
        lora={"r": 4, "alpha": 8, "target_modules": ["q_proj", "v_proj"]},
    )  # fmt: skip
    metrics = train.run(config, {"data": data}, tmp_path / "out")
    assert metrics["steps"] == 2 and metrics["best_step"] == 2 and metrics["examples"] == 16
    saved = tmp_path / "out" / "model"
    assert not (saved / "adapter_config.json").exists()
    trained = AutoModelForCausalLM.from_pretrained(str(saved)).state_dict()
    base = AutoModelForCausalLM.from_pretrained(str(tiny_model)).state_dict()
    assert set(trained) == set(base)  # a plain checkpoint: no adapter weights left
    changed = {k for k in base if not torch.equal(base[k], trained[k])}
    assert changed and all("q_proj" in k or "v_proj" in k for k in changed)


def twelve_thousand_math_records(path: Path) -> Path:
    """A stand-in for MATH's 12,000-problem train split (not in the shared data): MATH-500's
    records repeated, each made distinct."""
    records = [json.loads(line) for line in (MATH / "test.jsonl").open()]
    with path.open("w") as f:
        for i in range(12_000):
            record = records[i % 500]
            f.write(json.dumps({**record, "problem": f"{record['problem']} ({i})"}) + "\n")
    return path


READY_SPECS = sorted(p.name for p in (ROOT / "specs").glob("*.yaml") if p.name != "demo.yaml")


@pytest.mark.parametrize("name", READY_SPECS)
def test_ready_specs_validate(name, tmp_path, monkeypatch, results, cli):
    monkeypatch.setenv("SCALER_DATA", str(DATA))
    monkeypatch.setenv("MATH_TRAIN", str(twelve_thousand_math_records(tmp_path / "math.jsonl")))
    user = write_user_data(tmp_path / "mine.jsonl", user_records(100), {})
    monkeypatch.setenv("SCALER_USER_DATA", str(user))
    planned = cli(f"plan {ROOT / 'specs' / name}")
    assert planned.code == 0, planned.err
    assert "0 done" in planned.out and "train" in planned.out


def test_dpo_on_preference_pairs_moves_the_policy_from_its_reference(tmp_path, small_gsm8k,
                                                                     tiny_model):  # fmt: skip
    import torch
    from transformers import AutoModelForCausalLM

    data = tmp_path / "data"
    prepare.run(prepare_config(small_gsm8k["train"], {"test": small_gsm8k["test"]},
                               val_problems=4), {}, data)  # fmt: skip
    # Pairs: the reference solution over the same solution ending in a wrong answer.
    pairs = tmp_path / "pairs"
    pairs.mkdir()
    rows = [
        {"id": p["id"], "prompt": p["prompt"], "chosen": p["solution"],
         "rejected": p["solution"].rsplit("####", 1)[0] + f"#### {int(p['answer']) + 7}"}
        for p in read_jsonl(data / "train.jsonl", 16)
    ]  # fmt: skip
    (pairs / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    init = tmp_path / "init"
    shutil.copytree(tiny_model, init / "model")
    config = train.Config(
        model={"name_or_path": str(tiny_model), "max_positions": 384},
        world="gsm8k", objective="dpo", dpo_beta=0.1, size=16, batch_size=8, lr=5e-3,
        min_steps=4, max_steps=4, eval_every=4, val_problems=4, max_new_tokens=8, keep="last",
    )  # fmt: skip
    metrics = train.run(config, {"data": data, "train_data": pairs, "init": init}, tmp_path / "out")
    assert metrics["steps"] == 4 and metrics["examples"] == 16
    assert metrics["final_reward_margin"] > 0  # chosen now likelier than rejected, vs reference
    trained = AutoModelForCausalLM.from_pretrained(str(tmp_path / "out" / "model")).state_dict()
    base = AutoModelForCausalLM.from_pretrained(str(tiny_model)).state_dict()
    assert any(not torch.equal(base[k], trained[k]) for k in base)


def test_math500_trains_and_evaluates_with_pass_and_maj_at_k(tmp_path, tiny_model):
    from runners.stages import evaluate

    few = head(MATH / "test.jsonl", 40, tmp_path / "math.jsonl")
    data = tmp_path / "data"
    prepare.run(prepare_config(few, {"math500": head(MATH / "test.jsonl", 6, tmp_path / "e.jsonl")},
                               kind="math", val_problems=4), {}, data)  # fmt: skip
    prompt = {"template": "Problem:\n{question}\n\nSolution:\n"}
    config = train.Config(
        model={"name_or_path": str(tiny_model), "max_positions": 512}, world="math",
        prompt=prompt, size=8, batch_size=4, min_steps=2, max_steps=2, eval_every=2,
        val_problems=2, max_new_tokens=8,
    )  # fmt: skip
    train.run(config, {"data": data}, tmp_path / "model")
    scored = evaluate.Config(
        split="math500", world="math", prompt=prompt, max_new_tokens=12, samples=3,
        temperature=1.0, stop=("\n\nProblem:",),
    )  # fmt: skip
    metrics = evaluate.run(scored, {"model": tmp_path / "model", "data": data}, tmp_path / "eval")
    assert metrics["n"] == 6 and metrics["k"] == 3
    rows = pq.read_table(tmp_path / "eval" / "problems.parquet").to_pylist()
    golds = [json.loads(line)["answer"] for line in (MATH / "test.jsonl").open()][:6]
    assert [r["gold_answer"] for r in rows] == golds
    assert all(r["n_samples"] == 3 and 0 <= r["n_correct"] <= 3 for r in rows)
    assert all(r["pass_at_k"] == (r["n_correct"] > 0) for r in rows)
    samples = pq.read_table(tmp_path / "eval" / "samples.parquet").to_pylist()
    assert len(samples) == 18 and all(s["n_tokens"] <= 12 for s in samples)
    assert {s["reason"] for s in samples} <= {
        "equivalent", "mismatch", "no answer found", "parse failure", "time limit",
    }  # fmt: skip
