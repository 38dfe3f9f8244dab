"""Sampling time of the diffusion animation models: the audio encoder run once per clip (this package) vs once per
denoising step (the published FaceDiffuser / LG-LDM code), side by side in one process, same seed.

    python benchmarks/bench_diffusion.py sampling [--model facediffuser] [--seconds 10] [--steps 20] [--threads 1]

The model is the VOCASET preset at the published size (FaceDiffuser: V*3 = 15069, d = 256, GRU 256) over a randomly
initialised HuBERT of base size (hubert-base-ls960's architecture, the published encoder; no pre-trained weights can
be downloaded here), in eval mode, fp32, batch 1. Both runs sample the same clip with the same seed and must give
identical vertices. `--steps` is the number of sampler steps actually run (the published chain has 1000 for
VOCASET); the per-step costs give the projection for the full chain, reported as such. Prints JSON (with the ratio)
and writes it to `--output` when given.
"""

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch  # noqa: E402
from transformers import HubertConfig  # noqa: E402

from benchmarks.reporting import cpu_name, emit_json  # noqa: E402
from training.animation.recipes import get_recipe  # noqa: E402


def build_model(model_name: str, seed: int):
    recipe = get_recipe(model_name)
    config = recipe.config_class.from_preset("vocaset", audio_config=HubertConfig(layerdrop=0.0, mask_time_prob=0.0))
    torch.manual_seed(seed)
    model = recipe.model_class(config).eval()
    with torch.no_grad():  # off the zero-initialised output, so that the samples depend on every step
        for name, parameter in model.named_parameters():
            if "final_layer" in name or "latent_decoder" in name:
                parameter.normal_(0, 0.01)
    return model


def timed(function, repeats: int = 1) -> tuple[float, object]:
    best, result = float("inf"), None
    for _ in range(repeats):
        start = time.perf_counter()
        result = function()
        best = min(best, time.perf_counter() - start)
    return best, result


def sampling(args) -> dict:
    torch.set_num_threads(args.threads)
    load_before = os.getloadavg()[0]
    model = build_model(args.model, args.seed)
    config = model.config
    samples = int(args.seconds * config.sampling_rate)
    audio = torch.randn(1, samples, generator=torch.Generator().manual_seed(args.seed))
    template = 0.1 * torch.randn(config.vertice_dim, generator=torch.Generator().manual_seed(args.seed + 1))

    def sample(every_step: bool):
        return model.predict(audio, template, 0, num_inference_steps=args.steps, generator=args.seed,
                             encode_every_step=every_step).vertices

    with torch.no_grad():
        sample(False)  # warm-up (allocations, kernels)
        once_s, once = timed(lambda: sample(False), args.repeats)
        every_s, every = timed(lambda: sample(True), args.repeats)
        encoder_s, conditioning = timed(lambda: model.encode_conditioning(audio, template, 0), args.repeats)
        shape = (1, *model.latent_shape(conditioning.frames[0]))
        noisy = torch.randn(shape, generator=torch.Generator().manual_seed(args.seed))
        steps = torch.full((1,), config.num_train_timesteps - 1)
        denoise_s, _ = timed(lambda: model.denoise(noisy, steps, conditioning), max(3, args.repeats))
    full = config.num_train_timesteps if getattr(config, "diffusion_scheduler", "ddpm") == "ddpm" else (
        config.num_inference_steps)
    result = {
        "benchmark": "diffusion_sampling",
        "model": args.model,
        "preset": "vocaset",
        "audio_encoder": "random HuBERT, hubert-base-ls960 architecture (12 layers, 768), fp32",
        "audio_seconds": args.seconds,
        "frames": conditioning.frames[0],
        "vertice_dim": config.vertice_dim,
        "sampler_steps_run": args.steps,
        "published_steps": full,
        "threads": args.threads,
        "repeats": args.repeats,
        "machine": f"{cpu_name()}, {os.cpu_count()} cores, torch {torch.__version__}",
        "load_average_1min": [round(load_before, 1), round(os.getloadavg()[0], 1)],
        "under_load": "other processes share the cores: the times are loaded; the ratio is measured side by side",
        "encoder_once_s": round(once_s, 3),
        "encoder_every_step_s": round(every_s, 3),
        "ratio_every_step_over_once": round(every_s / once_s, 2),
        "identical_vertices": bool(torch.equal(once, every)),
        "encoder_pass_s": round(encoder_s, 4),
        "denoiser_step_s": round(denoise_s, 4),
        "projected_published_chain_s": {
            "encoder_once": round(encoder_s + full * denoise_s, 1),
            "encoder_every_step": round(full * (encoder_s + denoise_s), 1),
            "ratio": round(full * (encoder_s + denoise_s) / (encoder_s + full * denoise_s), 1),
            "note": f"encoder_pass_s and denoiser_step_s times {full} steps (a projection, not a run)",
        },
    }
    return result


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    s = commands.add_parser("sampling", help="encoder once vs every step, side by side")
    s.add_argument("--model", default="facediffuser", choices=["facediffuser", "lgldm"])
    s.add_argument("--seconds", type=float, default=10.0)
    s.add_argument("--steps", type=int, default=20)
    s.add_argument("--repeats", type=int, default=1)
    s.add_argument("--threads", type=int, default=1)
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--output", help="write the JSON here too")
    args = parser.parse_args(argv)
    return emit_json(sampling(args), args.output)


if __name__ == "__main__":
    main()
