"""The GPU forms of a train step: two ranks over NCCL, bf16, DeepSpeed ZeRO-2 and ZeRO-3 (whose
ranks each hold a slice of every weight, so the best weights are saved by the trainer rather
than copied). Skipped, with the reason, without the GPUs or DeepSpeed they need."""

from __future__ import annotations

import importlib.util

import pytest
import torch
from test_distributed_train import CONFIG, data, step_job  # noqa: F401  (data: a fixture)
from transformers import AutoModelForCausalLM

from scaler.run.job import run_step

GPUS = torch.cuda.device_count()
pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(GPUS == 0, reason="no CUDA device"),
]
needs_deepspeed = pytest.mark.skipif(
    importlib.util.find_spec("deepspeed") is None, reason="deepspeed is not installed"
)


@pytest.mark.skipif(GPUS < 2, reason=f"two ranks over NCCL need 2 GPUs; {GPUS} here")
def test_two_ranks_over_nccl_train_as_one(data, tmp_path):  # noqa: F811
    fp32 = CONFIG.model_copy(update={"precision": "fp32"})
    one = run_step(step_job(tmp_path, "one", data, 1, fp32))
    two = run_step(step_job(tmp_path, "two", data, 2, fp32))
    assert two["world_size"] == 2
    losses_one = [loss for _, loss in one["train_losses"]]
    losses_two = [loss for _, loss in two["train_losses"]]
    # cuBLAS reductions are not bit-stable across batch shapes: close, not equal.
    assert losses_two == pytest.approx(losses_one, rel=1e-3)


def test_a_bf16_step_trains_and_saves_a_loadable_model(data, tmp_path):  # noqa: F811
    bf16 = CONFIG.model_copy(update={"precision": "bf16"})
    metrics = run_step(step_job(tmp_path, "bf16", data, 1, bf16))
    assert all(loss == loss for _, loss in metrics["train_losses"])  # no NaN
    model = AutoModelForCausalLM.from_pretrained(
        tmp_path / "exp" / "steps" / "train" / "bf16" / "model"
    )
    assert sum(p.numel() for p in model.parameters()) > 0


@needs_deepspeed
@pytest.mark.parametrize("zero", ["zero2", "zero3"])
@pytest.mark.parametrize("keep", ["best_on_val", "last"])
def test_deepspeed_zero_saves_whole_weights(data, tmp_path, zero, keep):  # noqa: F811
    ranks = min(GPUS, 2)
    config = CONFIG.model_copy(update={"deepspeed": zero, "keep": keep, "precision": "bf16"})
    name = f"{zero}-{keep}"
    metrics = run_step(step_job(tmp_path, name, data, ranks, config))
    assert metrics["world_size"] == ranks
    saved = AutoModelForCausalLM.from_pretrained(
        tmp_path / "exp" / "steps" / "train" / name / "model"
    )
    # ZeRO-3 keeps a slice of each weight per rank: a model saved from the slices would be empty.
    assert all(p.numel() > 0 for p in saved.parameters())
