"""A train step as 1 process and as 2 (gloo, torch's elastic launcher), same global batch, in
the same process: wall time per step, the launcher's share, and the loss trajectories.

On a 2-core machine 2 ranks cannot train faster than 1 (each rank runs 1 torch thread, and 1
process already uses 1 core); what this measures is the price of the ranks: spawning and
importing twice, the rendezvous and a gradient all-reduce per step.

    python benchmarks/bench_ranks.py [--steps 60] [--repeats 3]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from common import machine


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=60, help="optimisation steps per run")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    from runners.stages import generate, train
    from scaler.run.job import StepJob, run_step

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        world = generate.Config(train_pool=512, val_problems=32, test_problems=8)
        generate.run(world, {}, root / "g")
        config = train.Config(
            size=512, min_steps=args.steps, max_steps=args.steps, eval_every=args.steps,
            val_problems=32,
        )  # fmt: skip
        walls: dict[int, list[float]] = {1: [], 2: []}
        losses: dict[int, list] = {}
        for repeat in range(args.repeats):
            for world in (1, 2):
                name = f"w{world}-{repeat}"
                stage = root / "exp" / "steps" / "train"
                job = StepJob(
                    name=name, stage="train", step_id=name, module="runners.stages.train",
                    version=2, config=config.model_dump(mode="json"),
                    inputs={"data": str(root / "g")}, coords={}, out_dir=str(stage / name),
                    work_dir=str(stage / f".work-{name}"), world_size=world,
                )  # fmt: skip
                start = time.perf_counter()
                metrics = run_step(job)
                walls[world].append(time.perf_counter() - start)
                losses[world] = [round(loss, 5) for _, loss in metrics["train_losses"]]
                print(f"repeat {repeat}, {world} rank(s): {walls[world][-1]:.1f} s", flush=True)
    one, two = statistics.median(walls[1]), statistics.median(walls[2])
    print(f"machine: {machine()}")
    print(f"{args.steps} steps of 32 sequences: 1 rank {one:.1f} s, 2 ranks {two:.1f} s "
          f"(ratio {two / one:.2f}); extra {two - one:.1f} s per step run")  # fmt: skip
    print(f"losses, 1 rank:  {losses[1]}")
    print(f"losses, 2 ranks: {losses[2]}")


if __name__ == "__main__":  # the ranks are spawned processes: they import this file again
    main()
