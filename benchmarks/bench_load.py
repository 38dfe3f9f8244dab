"""The pretraining step beside another CPU-bound process: torch's threads fixed at the cores vs sized by `CpuThreads`.

    python benchmarks/bench_load.py [--steps 20] [--batch_size 8] [--seconds 2.0]
    python benchmarks/bench_load.py --main_job [--output FILE]     # the whole main job, idle and beside a busy loop

Three timings of the same `small`-preset Wav2Sem training step (forward, L1 to random targets, backward, AdamW), one
after the other in one run: the idle machine with torch's threads at the cores; then, with one busy-loop process
started beside it, the same fixed threads, and the thread count `CpuThreads` picks (the scripts' default). Prints
JSON with steps/s, the slowdowns against idle, and the machine (issue #17's load row: goal <= 2.5x idle under load).

`--main_job` times the main job itself instead, `accelerate launch training/pretrain.py` with its defaults (into
temporary folders; the data and teacher-target caches are warmed by an untimed first run when `--warm_up`), once on
the idle machine and once beside one busy-loop process: wall seconds each and their ratio.
"""

import argparse
import multiprocessing
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch  # noqa: E402

from benchmarks.reporting import cpu_description, emit_json  # noqa: E402
from modeling_wav2sem import Wav2SemConfig, Wav2SemModel  # noqa: E402
from training.common.runtime import CpuThreads  # noqa: E402


def busy_loop():
    while True:
        pass


def steps_per_second(model, optimizer, audio, targets, steps: int) -> float:
    def step():
        loss = (model(audio).semantic_embeds - targets).abs().mean()
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    step()  # warm-up
    start = time.perf_counter()
    for _ in range(steps):
        step()
    return steps / (time.perf_counter() - start)


def main_job_seconds(output_dir: Path) -> float:
    """Wall seconds of `accelerate launch training/pretrain.py` (its defaults) writing to `output_dir`."""
    script = Path(__file__).resolve().parent.parent / "training" / "pretrain.py"
    command = ["accelerate", "launch", str(script), "--output_dir", str(output_dir), "--report_to", "none"]
    start = time.perf_counter()
    with open(output_dir.with_suffix(".log"), "w") as log:
        subprocess.run(command, check=True, stdout=log, stderr=subprocess.STDOUT)
    return time.perf_counter() - start


def main_job(args) -> dict:
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)
        if args.warm_up:
            main_job_seconds(folder / "warm-up")
        idle = main_job_seconds(folder / "idle")
        other = multiprocessing.Process(target=busy_loop, daemon=True)
        other.start()
        try:
            busy = main_job_seconds(folder / "busy")
        finally:
            other.terminate()
            other.join()
    return {
        "benchmark": "main job beside one busy process",
        "machine": cpu_description(),
        "load_average_before": load_before,
        "command": "accelerate launch training/pretrain.py (defaults: sample corpus, small preset, 360 steps)",
        "wall_seconds": {"idle": round(idle, 1), "beside one busy process": round(busy, 1)},
        "slowdown_vs_idle": round(busy / idle, 2),
        "goal": "<= 2.5x idle under load",
    }


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--batch_size", type=int, default=8)
    p.add_argument("--seconds", type=float, default=2.0)
    p.add_argument("--main_job", action="store_true", help="time the whole main job instead of the step")
    p.add_argument("--warm_up", action="store_true", help="with --main_job: an untimed first run warms the caches")
    p.add_argument("--output", help="also write the JSON to this file")
    args = p.parse_args(argv)
    if args.main_job:
        emit_json(main_job(args), args.output)
        return

    torch.manual_seed(0)
    model = Wav2SemModel(Wav2SemConfig.from_preset("small")).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-5)
    audio = torch.randn(args.batch_size, int(args.seconds * 16000))
    targets = torch.randn(args.batch_size, model.config.text_embed_dim)
    cores = len(os.sched_getaffinity(0))
    load_before = os.getloadavg()[0]

    torch.set_num_threads(cores)
    idle = steps_per_second(model, optimizer, audio, targets, args.steps)
    other = multiprocessing.Process(target=busy_loop, daemon=True)
    other.start()
    try:
        time.sleep(1.0)
        torch.set_num_threads(cores)
        fixed = steps_per_second(model, optimizer, audio, targets, args.steps)
        policy = CpuThreads()
        chosen = policy.threads
        adaptive = steps_per_second(model, optimizer, audio, targets, args.steps)
    finally:
        other.terminate()
        other.join()
    result = {
        "benchmark": "pretraining step beside one busy process",
        "machine": cpu_description(),
        "load_average_before": load_before,
        "batch": f"{args.batch_size} x {args.seconds} s, small preset, fp32",
        "steps_per_second": {"idle, threads = cores": round(idle, 3), "busy, threads = cores": round(fixed, 3),
                             f"busy, CpuThreads ({chosen} threads)": round(adaptive, 3)},
        "slowdown_vs_idle": {"threads = cores": round(idle / fixed, 2), "CpuThreads": round(idle / adaptive, 2)},
        "goal": "<= 2.5x idle under load",
    }
    emit_json(result, args.output)


if __name__ == "__main__":
    main()
