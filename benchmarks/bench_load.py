"""The pretraining step beside another CPU-bound process: torch's threads fixed at the cores vs sized by `CpuThreads`.

    python benchmarks/bench_load.py [--steps 20] [--batch_size 8] [--seconds 2.0]

Three timings of the same `small`-preset Wav2Sem training step (forward, L1 to random targets, backward, AdamW), one
after the other in one run: the idle machine with torch's threads at the cores; then, with one busy-loop process
started beside it, the same fixed threads, and the thread count `CpuThreads` picks (the scripts' default). Prints
JSON with steps/s, the slowdowns against idle, and the machine (issue #17's load row: goal <= 2.5x idle under load).
"""

import argparse
import multiprocessing
import os
import sys
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


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--batch_size", type=int, default=8)
    p.add_argument("--seconds", type=float, default=2.0)
    args = p.parse_args(argv)

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
    emit_json(result)


if __name__ == "__main__":
    main()
