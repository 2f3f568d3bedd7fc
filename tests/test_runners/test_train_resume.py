"""The train stage killed mid-way continues from its last checkpoint (runners/stages/train.py)."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys

import pytest
import torch
import trl
from safetensors.torch import load_file
from transformers import TrainerCallback

from conftest import ROOT, SMALL_SPEC, generate_small_world
from runners.model import ModelConfig
from runners.stages import train
from runners.trainer import CALLBACK_STATE
from scaler.plan import config_hash, expand
from scaler.spec.load import load_spec

# 100 problems in batches of 32: 4 steps an epoch. Checkpoints at 5 and 10 (none at the end),
# evaluations at 3, 6, 9 and 12. The kill after step 11 leaves checkpoint-10, mid-epoch, so the
# resume must also skip the batches of the epoch already trained.
CONFIG = train.Config(
    size=100,
    seed=0,
    min_steps=12,
    max_steps=12,
    eval_every=3,
    checkpoint_every=5,
    val_problems=16,
    max_new_tokens=24,
    model=ModelConfig(**SMALL_SPEC["model"]),
)
KILL_AFTER_STEP = 11

# Runs train.run with a callback that SIGKILLs the process at the end of a step: no exception,
# no cleanup, what a Slurm time limit or preemption does.
KILLED_RUN = """
import json, os, signal, sys
from pathlib import Path
import torch, trl
from transformers import TrainerCallback
from runners.stages import train

config, data, out, checkpoints, kill_after, threads = sys.argv[1:]
torch.set_num_threads(int(threads))

class Kill(TrainerCallback):
    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step == int(kill_after):
            os.kill(os.getpid(), signal.SIGKILL)

class KilledTrainer(trl.SFTTrainer):
    def __init__(self, *args, callbacks=(), **kwargs):
        super().__init__(*args, callbacks=[*callbacks, Kill()], **kwargs)

trl.SFTTrainer = KilledTrainer
config = train.Config.model_validate_json(config)
train.run(config, {"data": Path(data)}, Path(out), Path(checkpoints))
"""


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return generate_small_world(tmp_path_factory.mktemp("resume") / "generate")


@pytest.fixture
def final_weights(monkeypatch):
    """The weights at the end of training (out_dir holds the best ones, which may be earlier)."""
    weights: dict[str, torch.Tensor] = {}

    class Record(TrainerCallback):
        def on_train_end(self, args, state, control, model=None, **kwargs):  # noqa: ANN001
            weights.update({k: v.detach().clone() for k, v in model.state_dict().items()})

    class RecordingTrainer(trl.SFTTrainer):
        def __init__(self, *args, callbacks=(), **kwargs):  # noqa: ANN002, ANN003
            super().__init__(*args, callbacks=[*callbacks, Record()], **kwargs)

    monkeypatch.setattr(trl, "SFTTrainer", RecordingTrainer)
    return weights


def test_a_killed_run_resumes_and_ends_as_an_uninterrupted_one(
    data, tmp_path, monkeypatch, final_weights
):
    # Nothing saved outside out_dir without a checkpoint_dir: the working directory stays empty.
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    plain = train.run(CONFIG, {"data": data}, tmp_path / "plain")
    plain_final = dict(final_weights)
    assert list(cwd.iterdir()) == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cwd", "plain"]
    assert not list((tmp_path / "plain").rglob("checkpoint-*"))
    assert plain["resumed_from_step"] == 0

    checkpoints = tmp_path / "checkpoints"
    killed = subprocess.run(
        [
            sys.executable,
            "-c",
            KILLED_RUN,
            CONFIG.model_dump_json(),
            str(data),
            str(tmp_path / "killed"),
            str(checkpoints),
            str(KILL_AFTER_STEP),
            str(torch.get_num_threads()),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    saved = sorted(p.name for p in (checkpoints / "trainer").glob("checkpoint-*"))
    assert saved == ["checkpoint-10"]  # checkpoint-5 removed once checkpoint-10 was complete
    # A kill during a later save leaves a folder without the validation state: not resumed from.
    partial = checkpoints / "trainer" / "checkpoint-11"
    shutil.copytree(checkpoints / "trainer" / "checkpoint-10", partial)
    (partial / CALLBACK_STATE).unlink()

    final_weights.clear()
    resumed = train.run(CONFIG, {"data": data}, tmp_path / "resumed", checkpoints)
    assert resumed["resumed_from_step"] == 10
    assert not partial.exists()

    # Training continued bitwise: the final weights, the chosen ones and the val curve, whose
    # points at 3, 6 and 9 were evaluated before the kill and restored from the checkpoint.
    assert plain_final.keys() == final_weights.keys()
    for name, tensor in plain_final.items():
        assert torch.equal(tensor, final_weights[name]), name
    chosen = load_file(tmp_path / "resumed" / "model" / "model.safetensors")
    reference = load_file(tmp_path / "plain" / "model" / "model.safetensors")
    assert chosen.keys() == reference.keys()
    assert all(torch.equal(chosen[name], reference[name]) for name in chosen)
    curve = json.loads((tmp_path / "resumed" / "val_curve.json").read_text())
    assert [point["step"] for point in curve] == [3, 6, 9, 12]
    assert curve == json.loads((tmp_path / "plain" / "val_curve.json").read_text())
    for metric in ("steps", "tokens_trained", "best_step", "best_val_accuracy"):
        assert resumed[metric] == plain[metric], metric
    # Not final_train_loss: the loss logged over 10-12 counts only the steps after the resume.


def test_checkpoint_every_does_not_change_step_ids(small_spec):
    assert config_hash(train.Config(checkpoint_every=0)) == config_hash(train.Config())
    assert config_hash(train.Config(checkpoint_every=7)) == config_hash(train.Config())
    assert config_hash(train.Config(eval_every=7)) != config_hash(train.Config())
    default = expand(load_spec(small_spec))
    changed = expand(load_spec(small_spec, ["stages.train.checkpoint_every=0"]))
    assert [step.id for step in changed.steps] == [step.id for step in default.steps]
