"""Pretraining objectives on one budget: plain L1 vs standardised targets vs standardised targets + in-batch InfoNCE.

    python benchmarks/bench_objectives.py [--max_train_steps 360] [--work_dir DIR] [extra training/pretrain.py args]

Runs `training/pretrain.py` once per objective with everything else equal (the main job's defaults: embedded corpus,
`small` preset, variant c, seed 42, fp32 so that the timing probe cannot make the runs differ) and prints JSON: each
objective's final evaluation on the eval split and on the training sample (L1 and cosine to the teacher, R@1/R@5),
beside the predict-the-mean-target baseline and chance.
"""

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OBJECTIVES = {
    "l1": ["--standardize_targets", "false"],
    "standardized": ["--standardize_targets", "true"],
    "standardized_infonce": ["--standardize_targets", "true", "--infonce_weight", "0.5"],
}
REPORTED = ("l1", "cosine", "r@1", "r@5", "mean_target_l1", "mean_target_cosine", "chance_r@1", "chance_r@5")


def train(objective: str, work_dir: Path, max_train_steps: int, extra: list[str]) -> dict:
    """One pretraining run; its final evaluation, rounded, and its wall time."""
    output_dir = work_dir / objective
    command = [
        sys.executable, str(ROOT / "training" / "pretrain.py"), "--output_dir", str(output_dir),
        "--max_train_steps", str(max_train_steps), "--mixed_precision", "no", "--report_to", "none",
        *OBJECTIVES[objective], *extra,
    ]
    start = time.perf_counter()
    subprocess.run(command, check=True, cwd=ROOT, stdout=subprocess.DEVNULL)
    summary = json.loads((output_dir / "training_summary.json").read_text())
    result = {
        split: {key: round(metrics[key], 4) for key in REPORTED} for split, metrics in summary["final_eval"].items()
    }
    return {**result, "wall_s": round(time.perf_counter() - start, 1), "steps": summary["steps"]}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--max_train_steps", type=int, default=360, help="the main job's budget by default")
    parser.add_argument("--work_dir", default="/tmp/bench_objectives", help="where the runs' models are written")
    args, extra = parser.parse_known_args(argv)
    results = {"max_train_steps": args.max_train_steps, "extra_args": extra}
    for objective in OBJECTIVES:
        print(f"training with {objective} ...", file=sys.stderr)
        results[objective] = train(objective, Path(args.work_dir), args.max_train_steps, extra)
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
