"""GPU figures in one short run: the paper preset's pretraining step (utterances/s, achieved TFLOP/s and model FLOPs
utilisation in bf16) and the encoder's inference time beside transformers' `Wav2Vec2Model` of the same architecture.

    python benchmarks/bench_gpu.py [--device cuda] [--batch_size 16] [--steps 20] [--output FILE]

Pretraining step: `Wav2SemModel` (paper preset, random weights, LayerDrop off so that every step runs the FLOPs
counted), batches of random audio whose lengths are drawn between 0.75 and 1 x `--utterance_seconds` (LibriSpeech's
training utterances average 12.3 s), right-padded with attention masks, the L1 objective, AdamW, under bf16 autocast,
after `--warmup` untimed steps. Random audio times like speech and keeps the script to torch and transformers, which
the lent GPU machine has (its Python has no soundfile or datasets). Model FLOPs are counted analytically on the real (unpadded)
samples (`reporting.count_flops`, x3 for forward + backward); utilisation is read against a bf16 matmul (8192 x 8192 on
a GPU) measured in the same run. Inference: 10 s of audio (`--seconds`) at batch 1 and `--batch_size`, fp32 and bf16
autocast, our model and transformers' interleaved, medians of `--repeats`. `--device cpu` runs the same script on a CPU
(a check that it works; the CPU figures come from bench_encoder.py and bench_pretrain.py).
"""

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch

from benchmarks.baselines import OfficialArchitecture
from benchmarks.reporting import count_flops, cpu_description, emit_json, matmul_gflops, synchronize
from modeling_wav2sem import Wav2SemConfig, Wav2SemModel
from modeling_wav2sem.modeling_wav2sem import lengths_to_mask
from training.objectives import semantic_loss


def machine(device: str) -> dict:
    if torch.device(device).type == "cuda":
        properties = torch.cuda.get_device_properties(device)
        return {"device": properties.name, "memory_gib": round(properties.total_memory / 2**30, 1),
                "cuda": torch.version.cuda, "cudnn": torch.backends.cudnn.version()}
    return {"device": cpu_description(), "threads": torch.get_num_threads()}


def autocast(device: str, enabled: bool):
    return torch.autocast(torch.device(device).type, dtype=torch.bfloat16, enabled=enabled)


def random_batches(batch_size: int, count: int, seconds: float) -> list[tuple[torch.Tensor, torch.Tensor, float]]:
    """`count` batches of unit-variance random audio, lengths between 0.75 and 1 x `seconds`, right-padded:
    (values, attention mask, model FLOPs of the real samples)."""
    config = Wav2SemConfig.from_preset("paper")
    generator = torch.Generator().manual_seed(0)
    batches = []
    for _ in range(count):
        lengths = (torch.rand(batch_size, generator=generator) * 0.25 + 0.75) * seconds * 16000
        lengths = lengths.long()
        mask = lengths_to_mask(lengths, int(lengths.max()))
        values = torch.randn(mask.shape, generator=generator) * mask
        batches.append((values, mask.long(), sum(count_flops(config, n)["total"] for n in lengths.tolist())))
    return batches


def pretraining_step(device: str, batch_size: int, steps: int, warmup: int, seconds: float, bf16_matmul: float) -> dict:
    """Seconds, utterances/s and TFLOP/s of `steps` optimisation steps of the paper preset under bf16 autocast."""
    torch.manual_seed(0)
    config = Wav2SemConfig.from_preset("paper", layerdrop=0.0)
    model = Wav2SemModel(config).to(device).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    batches = random_batches(batch_size, steps + warmup, seconds)
    targets = torch.randn(batch_size, config.text_embed_dim, device=device)
    elapsed, flops, utterances, samples, padded = 0.0, 0.0, 0, 0, 0
    for step, (values, mask, batch_flops) in enumerate(batches):
        values, mask = values.to(device), mask.to(device)
        synchronize(device)
        start = time.perf_counter()
        with autocast(device, True):
            out = model(values, attention_mask=mask)
        loss = semantic_loss(out.standardized_embeds, targets[: len(values)], model.target_shift, model.target_scale)
        loss["loss"].backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        synchronize(device)
        if step >= warmup:
            elapsed += time.perf_counter() - start
            flops += 3 * batch_flops
            utterances += len(values)
            samples, padded = samples + int(mask.sum()), padded + mask.numel()
    achieved = flops / elapsed / 1e12
    return {
        "preset": "paper", "batch_size": batch_size, "utterance_seconds": f"{0.75 * seconds:g}-{seconds:g}",
        "timed_steps": len(batches) - warmup, "seconds": round(elapsed, 3),
        "utterances_per_s": round(utterances / elapsed, 2), "audio_seconds_per_s": round(samples / 16000 / elapsed, 1),
        "padding_share": round(1 - samples / padded, 3), "model_tflops_per_s": round(achieved, 2),
        "model_flops_utilisation_vs_bf16_matmul": round(achieved / bf16_matmul, 3),
        "peak_memory_gib": (round(torch.cuda.max_memory_allocated(device) / 2**30, 2)
                            if torch.device(device).type == "cuda" else None),
    }


def inference(device: str, seconds: float, batch_sizes: list[int], repeats: int) -> list[dict]:
    """Milliseconds per forward of our encoder and transformers' Wav2Vec2Model (same architecture), interleaved."""
    torch.manual_seed(0)
    config = Wav2SemConfig.from_preset("paper")
    models = {"wav2sem": Wav2SemModel(config), "transformers": OfficialArchitecture(config).encoder}
    models = {name: model.to(device).eval() for name, model in models.items()}
    results = []
    for batch_size in batch_sizes:
        audio = torch.randn(batch_size, int(seconds * 16000), device=device)
        for bf16 in (False, True):
            times = {name: [] for name in models}
            with torch.inference_mode(), autocast(device, bf16):
                for round_index in range(repeats + 1):  # the first round warms up
                    for name, model in (models.items() if round_index % 2 else reversed(models.items())):
                        synchronize(device)
                        start = time.perf_counter()
                        model(audio)
                        synchronize(device)
                        if round_index:
                            times[name].append(time.perf_counter() - start)
            medians = {name: statistics.median(values) for name, values in times.items()}
            flops = count_flops(config, audio.shape[1])["total"] * batch_size
            results.append({
                "seconds_of_audio": seconds, "batch_size": batch_size, "dtype": "bf16-autocast" if bf16 else "fp32",
                "ms": {name: round(value * 1e3, 2) for name, value in medians.items()},
                "wav2sem_vs_transformers": round(medians["wav2sem"] / medians["transformers"], 3),
                "wav2sem_tflops_per_s": round(flops / medians["wav2sem"] / 1e12, 2),
            })
    return results


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--batch_size", type=int, default=16)
    parser.add_argument("--steps", type=int, default=20, help="timed pretraining steps (default: 20)")
    parser.add_argument("--warmup", type=int, default=3, help="untimed pretraining steps first (default: 3)")
    parser.add_argument("--utterance_seconds", type=float, default=15.0,
                        help="longest pretraining utterance; lengths are drawn from 0.75 to 1 x this (default: 15)")
    parser.add_argument("--seconds", type=float, default=10.0, help="audio length for inference (default: 10)")
    parser.add_argument("--repeats", type=int, default=10, help="timed inference rounds (default: 10)")
    parser.add_argument("--output", help="also write the JSON to this file")
    args = parser.parse_args(argv)
    if torch.device(args.device).type == "cuda" and not torch.cuda.is_available():
        parser.error(f"--device {args.device}: torch sees no CUDA device here (use --device cpu to check the script)")
    gpu = torch.device(args.device).type == "cuda"
    size = 8192 if gpu else 1024
    rates = {name: matmul_gflops(dtype, size=size, repeats=20 if gpu else 3, device=args.device) / 1e3
             for name, dtype in (("bf16", torch.bfloat16), ("fp32", torch.float32))}
    result = {
        "benchmark": "bench_gpu", "machine": machine(args.device), "torch": torch.__version__,
        "matmul_tflops_per_s": {"size": size, **{name: round(rate, 1) for name, rate in rates.items()}},
        "pretraining_step_bf16": pretraining_step(
            args.device, args.batch_size, args.steps, args.warmup, args.utterance_seconds, rates["bf16"]
        ),
        "inference": inference(args.device, args.seconds, [1, args.batch_size], args.repeats),
    }
    emit_json(result, args.output)


if __name__ == "__main__":
    main()
