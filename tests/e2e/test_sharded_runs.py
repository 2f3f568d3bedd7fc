"""Sharded stages on the demo world: a grid run in shards gives the results store the rows the
same grid gives in one step per stage, and a larger size adds only its new shards.

The grid has every stage that loops over problems: a sampler source (its samples verified in
shards, then read by the learner's training and sampling through their merge), the learner's
own samples for RFT and per-step DPO (sample, verify, rollout) and evaluations, all of them
tiny.
"""

from __future__ import annotations

import copy
import json

from conftest import SMALL_SPEC, finished_step_dirs, open_db, write_spec
from runs import HOW_IT_RAN
from scaler.plan import expand
from scaler.spec.load import load_spec

DECODING = {"batch_size": 10, "seeding": "per_problem", "max_new_tokens": 30}
GRID = copy.deepcopy(SMALL_SPEC) | {
    # Its samples are kept whatever their verdict, so that every problem has some to learn from
    # and the learner samples every problem of its size.
    "sources": [
        {
            "name": "weak",
            "model": SMALL_SPEC["model"],
            "train_size": 30,
            "samples": 2,
            "keep": "all",
        }
    ],
    "sizes": [20, 40],
    "algorithms": ["rft", "per_step_dpo"],
    "stages": SMALL_SPEC["stages"]
    | {
        "sample": DECODING | {"samples": 2},
        "rollout": DECODING | {"rollouts": 2},
        "evaluate": DECODING,
    },
}
SHARDS = {"sample": 10, "rollout": 15, "evaluate": 20}


def _spec(tmp_path, name: str, sizes: list[int], shards: dict[str, int] | None = None):
    spec = copy.deepcopy(GRID) | {"experiment": name, "sizes": sizes}
    for stage, size in (shards or {}).items():
        spec["stages"][stage]["shard_size"] = size
    return write_spec(tmp_path / f"{name}.yaml", spec)


# What the steps computed that does not depend on how they were split: every evaluation, the
# data metrics, and the metrics of every step that is not a shard (numbers, and whole reports
# with their counts of reasons and accuracies by steps), by the step's grid cell and the stage
# it stands for (a merge stands for the stage of its shards); the rows of every table.
CELL = "r.stage, s.source, s.algorithm, s.size, s.seed, s.eval_set"
RESULTS = {
    "evals": "SELECT * EXCLUDE (step_id, experiment, train_id) FROM evals",
    "data_metrics": "SELECT * EXCLUDE (step_id, experiment, candidates_id) FROM data_metrics",
    "metrics": f"""
        SELECT {CELL}, m.name, m.value
        FROM metrics m JOIN stage_results r USING (step_id) JOIN steps s USING (step_id)
        WHERE m.name NOT IN {HOW_IT_RAN}""",
    "reports": f"""
        SELECT {CELL}, s.metrics FROM steps s JOIN stage_results r USING (step_id)""",
    "eval_problems": """
        SELECT e.source, e.algorithm, e.size, e.eval_set, p.* EXCLUDE (step_id)
        FROM eval_problems p JOIN evals e USING (step_id)""",
    "samples": """
        SELECT d.source, d.size, x.* EXCLUDE (step_id)
        FROM samples x JOIN data_metrics d USING (step_id)""",
    "pits": """
        SELECT s.source, s.size, p.* EXCLUDE (step_id)
        FROM pits p JOIN steps s USING (step_id)""",
}


def _results(results, experiment: str) -> dict[str, list[tuple]]:
    with open_db(results, experiment) as con:
        found = {table: con.execute(sql).fetchall() for table, sql in RESULTS.items()}
    found["reports"] = [
        (*cell, {k: v for k, v in json.loads(report).items() if k not in HOW_IT_RAN})
        for *cell, report in found["reports"]
    ]
    return {table: sorted(rows, key=repr) for table, rows in found.items()}


def _stages(results, experiment: str) -> dict[str, int]:
    with open_db(results, experiment) as con:
        rows = con.execute("SELECT stage, count(*) FROM steps GROUP BY stage").fetchall()
    return dict(rows)


def test_a_sharded_grid_gives_the_rows_of_the_unsharded_one(cli, results, tmp_path):
    whole = cli(f"run {_spec(tmp_path, 'whole', [25])} --executor inline")
    assert whole.code == 0, whole.err
    split = cli(f"run {_spec(tmp_path, 'split', [25], SHARDS)} --executor inline")
    assert split.code == 0, split.err

    stages = _stages(results, "split")
    # The sampler's 25 problems and the learner's: 10, 10 and a partial shard of 5 each,
    # each verified; rollouts of 15 and 10; the 40 test problems of both arms in two.
    assert stages["sample"] == stages["verify"] == 3 + 3
    assert stages["rollout"] == 2
    assert stages["evaluate"] == 2 * 2
    # A merge per sharded step: the sampler's sample and verify, the learner's, its rollout,
    # and both evaluations.
    assert stages["merge"] == 2 + 2 + 1 + 2
    assert _stages(results, "whole").get("merge") is None

    whole_rows, split_rows = _results(results, "whole"), _results(results, "split")
    for table in RESULTS:
        assert split_rows[table] == whole_rows[table], table
    assert len(whole_rows["evals"]) == 2 and len(whole_rows["data_metrics"]) == 2
    assert len(whole_rows["samples"]) == 25 * 2 + 25 * 2
    assert len(whole_rows["pits"]) > 0


def test_a_larger_size_adds_only_its_new_shards(cli, results, tmp_path):
    spec = _spec(tmp_path, "grow", [20], SHARDS)
    # The sampler's sample shards read the world's problems; the learner's, the sampler's.
    sampler = [
        step
        for step in expand(load_spec(spec)).steps
        if step.stage == "sample" and dict(step.inputs)["problems"].stage == "generate"
    ]
    assert len(sampler) == 2
    first = cli(f"run {spec} --executor inline")
    assert first.code == 0, first.err
    before = finished_step_dirs(results, "grow")

    second = cli(f"run {_spec(tmp_path, 'grow', [40], SHARDS)} --executor inline")
    assert second.code == 0, second.err
    after = finished_step_dirs(results, "grow")
    # The sampler's model and its shards of problems 0-20 are kept, untouched.
    kept = {name for name in before if name in after}
    assert {step.name for step in sampler} <= kept
    assert {name: after[name] for name in kept} == {name: before[name] for name in kept}
    new = set(after) - set(before)
    # Its two new shards of problems 20-40, and the size-40 learner's four.
    assert len([name for name in new if name.startswith("sample-")]) == 2 + 4
    assert f"ran {len(new)} steps" in second.out
