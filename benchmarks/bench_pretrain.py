"""Training throughput: our pretraining step vs a reference-style loop, on the same data and preset, in one run.

    python benchmarks/bench_pretrain.py [--preset small] [--utterances 64] [--batch_size 8]

Ours: `Wav2SemModel`, length-grouped batches with attention masks, AdamW, in fp32 and with bf16 autocast (bf16 pays
only on CPUs with fast bf16 matmuls; the training script probes and picks it only there). Reference (what the official
script does): its encoder, which is transformers' `Wav2Vec2Model` with group feature norm and post-LN (built here with
the preset's geometry), mean pooling and the same head, plain L1, batch size 1, fp32, AdamW. `ours_batch1` runs our
model in the reference's loop, which splits the gain into the model's share and batching's share;
`ours_fp32_channel_major` runs ours_fp32 with the conv stack on `nn.Conv1d` (`time_major = False`), the
time-major conv's share (`time_major_conv_speedup`). All see the same
utterances (embedded corpus, decoded once up front so only the optimisation step is timed). Prints JSON: utterances/s
of each, the ratios, and achieved GFLOP/s (forward FLOPs counted analytically, x3 for forward + backward) against a
plain matmul's GFLOP/s measured in the same run.
"""

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np
import torch

from benchmarks.baselines import OfficialArchitecture
from benchmarks.reporting import count_flops, cpu_description, emit_json, matmul_gflops
from modeling_wav2sem import Wav2SemConfig, Wav2SemModel
from training.objectives import semantic_loss
from training.common.runtime import keep_freed_memory
from training.common.audio import decode_audio, normalize
from training.common.sampling import LengthGroupedBatchSampler
from training.pretraining_data import default_corpus_dir, pad_right


def channel_major(config: Wav2SemConfig) -> Wav2SemModel:
    """Our model with its conv stack on the channel-major `nn.Conv1d` path instead of `TimeMajorConv1d`."""
    model = Wav2SemModel(config)
    model.feature_extractor.time_major = False
    return model


def ours_loss(model: Wav2SemModel, values, mask, target) -> torch.Tensor:
    out = model(values, attention_mask=mask if len(values) > 1 else None)
    return semantic_loss(out.standardized_embeds, target, model.target_shift, model.target_scale)["loss"]


def official_loss(model: OfficialArchitecture, values, mask, target) -> torch.Tensor:
    return (model(values) - target).abs().mean()


def run(model, loss_fn, batches, targets, autocast: bool) -> float:
    """Seconds for one pass of optimisation steps over `batches` (lists of utterance indices)."""
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    model.train()
    start = time.perf_counter()
    for values, mask, index in batches:
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
            loss = loss_fn(model, values, mask, targets[index])
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    return time.perf_counter() - start


def op_profile(model, loss_fn, batches, targets, autocast: bool, top: int) -> dict:
    """Where one pass of optimisation steps spends its time, by operator (torch.profiler, self CPU time): the `top`
    operators' milliseconds and shares of the total, so the largest losses can be taken first."""
    from torch.profiler import ProfilerActivity, profile

    run(model, loss_fn, batches[:1], targets, autocast)  # warm-up: allocator, oneDNN primitives
    with profile(activities=[ProfilerActivity.CPU]) as profiler:
        run(model, loss_fn, batches, targets, autocast)
    events = [e for e in profiler.key_averages() if e.self_cpu_time_total > 0]
    total = sum(e.self_cpu_time_total for e in events)
    events.sort(key=lambda e: e.self_cpu_time_total, reverse=True)
    return {
        "total_ms": round(total / 1e3, 1),
        "ops": [
            {"op": e.key, "self_ms": round(e.self_cpu_time_total / 1e3, 1), "share": round(e.self_cpu_time_total / total, 4),
             "calls": e.count}
            for e in events[:top]
        ],
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--preset", default="small")
    parser.add_argument("--utterances", type=int, default=64)
    parser.add_argument("--batch_size", type=int, default=8)
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--default_allocator", action="store_true", help="skip the training scripts' malloc setting")
    parser.add_argument("--profile", type=int, default=0, metavar="N",
                        help="also profile one pass of ours_fp32 and ours_bf16 (torch.profiler): the N costliest ops")
    parser.add_argument("--output", help="also write the JSON to this file")
    args = parser.parse_args(argv)
    allocator_tuned = False if args.default_allocator else keep_freed_memory()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)

    files = sorted((default_corpus_dir() / "train-clean-100").rglob("*.flac"))[: args.utterances]
    waves = [normalize(decode_audio(str(f))) for f in files]
    config = Wav2SemConfig.from_preset(args.preset, layerdrop=0.0)
    targets = torch.randn(len(waves), config.text_embed_dim)
    sampler = LengthGroupedBatchSampler([len(w) for w in waves], args.batch_size, seed=0)
    ours = [(*pad_right([waves[i] for i in b]), b) for b in sampler]
    reference = [(*pad_right([waves[i]]), [i]) for i in range(len(waves))]

    results = {"machine": cpu_description(), "threads": args.threads, "preset": args.preset, "utterances": len(waves),
               "audio_seconds": sum(map(len, waves)) / 16000}
    flops = 3 * sum(count_flops(config, len(w))["total"] for w in waves)
    settings = {
        "ours_fp32": (Wav2SemModel, ours_loss, ours, False, f"batch {args.batch_size}, length-grouped, masked, fp32"),
        "ours_fp32_channel_major": (
            channel_major, ours_loss, ours, False,
            "as ours_fp32, with the conv stack's channel-major nn.Conv1d path (time_major=False)",
        ),
        "ours_bf16": (
            Wav2SemModel, ours_loss, ours, True, f"batch {args.batch_size}, length-grouped, masked, bf16 autocast"
        ),
        "ours_batch1": (Wav2SemModel, ours_loss, reference, False, "our model in the reference loop: batch 1, fp32"),
        "reference": (
            OfficialArchitecture, official_loss, reference, False,
            "the official script: Wav2Vec2Model architecture, batch 1, fp32, L1",
        ),
    }
    timings = {name: [] for name in settings}
    for _ in range(2):  # interleaved: A B C D A B C D, the median of each is reported
        for name, (model_class, loss_fn, batches, autocast, _) in settings.items():
            torch.manual_seed(0)
            timings[name].append(run(model_class(config), loss_fn, batches, targets, autocast=autocast))
    for name, values in timings.items():
        seconds = float(np.median(values))
        results[name] = {
            "seconds": round(seconds, 2), "utterances_per_s": round(len(waves) / seconds, 2),
            "gflops_per_s": round(flops / seconds / 1e9, 1), "setting": settings[name][-1],
        }
    best = max(("ours_fp32", "ours_bf16"), key=lambda name: results[name]["utterances_per_s"])
    results["best_ours"] = best
    rate = {name: results[name]["utterances_per_s"] for name in settings}
    results["speedup"] = round(rate[best] / rate["reference"], 2)
    results["time_major_conv_speedup"] = round(rate["ours_fp32"] / rate["ours_fp32_channel_major"], 3)
    results["speedup_parts"] = {  # speedup = model x batching
        "model": round(rate["ours_batch1"] / rate["reference"], 2), "batching": round(rate[best] / rate["ours_batch1"], 2)
    }
    results["matmul_gflops_per_s"] = {
        "fp32": round(matmul_gflops(torch.float32), 1), "bf16": round(matmul_gflops(torch.bfloat16), 1)
    }
    results["cpu_capability"] = torch.backends.cpu.get_cpu_capability()
    results["malloc_keeps_freed_memory"] = allocator_tuned  # as the training scripts set it (both loops share it)
    results["target_speedup"] = 4.0
    if args.profile:
        results["profile"] = {}
        for name in ("ours_fp32", "ours_bf16"):
            model_class, loss_fn, batches, autocast, _ = settings[name]
            torch.manual_seed(0)
            results["profile"][name] = op_profile(model_class(config), loss_fn, batches, targets, autocast, args.profile)
    emit_json(results, args.output)


if __name__ == "__main__":
    main()
