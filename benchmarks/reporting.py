"""What every benchmark does with its result: print it as JSON and, given `--output FILE`, write it there too; the
machine it was measured on, which every figure names; and the yardsticks its rates are read against (the encoder's
analytic FLOPs, a plain matmul's rate)."""

import json
import os
import platform
import time
from pathlib import Path

import torch


def _cpuinfo() -> str:
    try:
        return Path("/proc/cpuinfo").read_text()
    except OSError:
        return ""


def cpu_name() -> str:
    """The CPU's model name (`/proc/cpuinfo`), else what `platform` knows."""
    for line in _cpuinfo().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def cpu_description() -> str:
    """Model name, cores, whether it has AMX (`amx_bf16`, where bf16 matmuls are fast) and int8 dot-product
    instructions (VNNI, AMX-INT8): e.g. "Intel(R) Xeon(R) Processor, 2 cores, no AMX, VNNI"."""
    flags = set(next((line.split(":", 1)[1].split() for line in _cpuinfo().splitlines() if line.startswith("flags")), []))
    int8 = [name for name, flag in (("VNNI", "avx512_vnni"), ("AVX-VNNI", "avx_vnni"), ("AMX-INT8", "amx_int8"))
            if flag in flags]
    return ", ".join([cpu_name(), f"{os.cpu_count()} cores", "AMX" if "amx_bf16" in flags else "no AMX", *int8])


def emit_json(result: dict, output: str | None = None) -> dict:
    """Print `result` as indented JSON and write it to `output` when given; returns `result`."""
    text = json.dumps(result, indent=1)
    print(text)
    if output:
        Path(output).write_text(text + "\n")
    return result


def count_flops(config, samples: int) -> dict[str, float]:
    """Analytic FLOPs (1 multiply-add = 2 FLOPs) of one wav2vec2-style encoder forward on `samples` samples, batch 1.

    Works for `Wav2SemConfig`, `Wav2Vec2Config` and `HubertConfig` (same attribute names):

    - conv layer i: 2 * C_in * C_out * k * T_out;
    - feature projection: 2 * C_last * H * N;
    - positional conv: 2 * H * (H / groups) * k_pos * N;
    - per Transformer layer: linears 2 * N * (4 * H^2 + 2 * H * I) (q, k, v, out, FFN in and out) and attention
      4 * N^2 * H (scores and weighted sum).

    Norms, activations, softmax and additions are not counted.
    """
    flops = {"conv": 0.0}
    length, channels = samples, 1
    for dim, kernel, stride in zip(config.conv_dim, config.conv_kernel, config.conv_stride):
        length = (length - kernel) // stride + 1
        flops["conv"] += 2.0 * channels * dim * kernel * length
        channels = dim
    frames, hidden = length, config.hidden_size
    layers, inter = config.num_hidden_layers, config.intermediate_size
    flops["feature_projection"] = 2.0 * channels * hidden * frames
    flops["pos_conv"] = (
        2.0 * hidden * (hidden // config.num_conv_pos_embedding_groups) * config.num_conv_pos_embeddings * frames
    )
    flops["linear"] = layers * 2.0 * frames * (4 * hidden * hidden + 2 * hidden * inter)
    flops["attention"] = layers * 4.0 * frames * frames * hidden
    flops["total"] = sum(flops.values())
    flops["frames"] = frames
    return flops


def matmul_gflops(dtype: torch.dtype, size: int = 2048, repeats: int = 10, device: str = "cpu") -> float:
    """GFLOP/s of a plain `size` x `size` matmul in `dtype` on `device`: the machine's reference rate."""
    a = torch.randn(size, size, device=device).to(dtype)
    b = torch.randn(size, size, device=device).to(dtype)
    a @ b
    synchronize(device)
    start = time.perf_counter()
    for _ in range(repeats):
        a @ b
    synchronize(device)
    return 2 * size**3 * repeats / (time.perf_counter() - start) / 1e9


def synchronize(device: str) -> None:
    """Wait for `device`'s queued work (a no-op on CPU), so that wall-clock timings cover it."""
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)
