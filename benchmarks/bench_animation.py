"""Animation benchmarks: the paper's table (baseline vs + Wav2Sem) for any registered model on a VOCASET-format
dataset, and speed.

    # LVE / MVE / FDD of a model with a plain encoder and with the same encoder + Wav2Sem, same seed and budget
    python benchmarks/bench_animation.py table --model voca --data_dir DIR --wav2sem wav2sem-c --output_dir OUT
    # FaceFormer: frames/s for 10 s of audio, cached autoregression vs the original's re-decode-the-prefix loop
    python benchmarks/bench_animation.py speed [--seconds 10]
    # the same for CodeTalker (published VOCASET size), one timed run of each loop
    python benchmarks/bench_animation.py speed --model codetalker --repeats 1
    # training and inference frames/s of a model over a wav2vec2-base-size encoder
    python benchmarks/bench_animation.py throughput --model voca
    # a model trained on several datasets at once (UniTalker), each scored apart; batches > 1 vs 1 side by side
    python benchmarks/bench_animation.py table --model unitalker --datasets vocaset=DIR1 biwi=DIR2 --wav2sem W --output_dir OUT
    python benchmarks/bench_animation.py throughput --model unitalker --batch_sizes 1 4

`table` runs `training/train_animation.py` twice (one argument apart, `--jobs 2` side by side) and prints JSON with both rows and the ratios.
A model with several training stages (CodeTalker) trains all of them in each run, `--num_train_epochs` each;
`--config_overrides JSON` sets config fields over the preset (say so when quoting the numbers).
Without `--audio_encoder`, the plain encoder is a randomly initialised HuBERT with the `small` Wav2Sem geometry
(no pre-trained speech encoder can be downloaded here): say so when quoting the numbers.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402
import torch  # noqa: E402
from transformers import AutoModel, HubertConfig, Wav2Vec2Config  # noqa: E402

from modeling_wav2sem import (  # noqa: E402
    CodeTalkerConfig,
    CodeTalkerForAnimation,
    FaceFormerConfig,
    FaceFormerForAnimation,
    Wav2SemConfig,
)
from modeling_wav2sem.configuration_animation import get_animation_dataset  # noqa: E402
from training.animation.data import AnimationDataset, Regions  # noqa: E402
from training.animation.evaluation import score_predictions  # noqa: E402
from training.animation.recipes import ANIMATION_RECIPES, get_recipe  # noqa: E402


def plain_small_encoder(path: Path, seed: int) -> str:
    """A random HuBERT with the `small` preset's geometry (conv 256 x 7, hidden 384, 6 layers), saved to `path`."""
    small = Wav2SemConfig.from_preset("small")
    config = HubertConfig(
        conv_dim=small.conv_dim, hidden_size=small.hidden_size, num_hidden_layers=small.num_hidden_layers,
        num_attention_heads=small.num_attention_heads, intermediate_size=small.intermediate_size,
        num_conv_pos_embeddings=small.num_conv_pos_embeddings,
        num_conv_pos_embedding_groups=small.num_conv_pos_embedding_groups, layerdrop=0.0, mask_time_prob=0.0,
    )
    torch.manual_seed(seed)
    AutoModel.from_config(config).save_pretrained(path)
    return str(path)


def static_template_row(data_dir: str, dataset: str) -> dict:
    """The scores of predicting each test sequence's neutral template in every frame: what a model that ignores the
    audio (FaceFormer's zero-initialised output layer before training) gets; the floor any trained row must beat."""
    test = AnimationDataset(data_dir, dataset, "test")
    results = []
    for index in range(len(test)):
        item = test[index]
        frames = len(item["labels"])
        results.append({"name": item["name"], "prediction": np.tile(item["template"], (frames, 1)),
                        "reference": item["labels"], "template": item["template"]})
    info = get_animation_dataset(dataset)
    return score_predictions(results, Regions.from_folder(data_dir), info.lve_scale, info.fdd_scale)


def table(args) -> dict:
    out = Path(args.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    encoder = args.audio_encoder or plain_small_encoder(out / "plain-encoder", args.seed)
    if args.datasets:  # several datasets in one run, each scored apart
        data = ["--datasets", *args.datasets] + (["--dataset_repeats", *args.dataset_repeats] if args.dataset_repeats
                                                 else [])
        folders = dict(item.split("=", 1) for item in args.datasets)
    elif args.data_dir:
        data = ["--dataset", args.dataset, "--data_dir", args.data_dir]
        folders = {args.dataset: args.data_dir}
    else:
        raise SystemExit("error: table needs --data_dir or --datasets NAME=DIR ...")
    common = [
        "--model", args.model, "--audio_encoder", encoder, *data, "--seed", str(args.seed),
        "--num_train_epochs", str(args.num_train_epochs), "--mixed_precision", args.mixed_precision,
        "--render_frames", "5", "--logging_steps", "20",
    ]
    if args.max_train_steps:
        common += ["--max_train_steps", str(args.max_train_steps)]
    if args.teacher_forcing:
        common += ["--teacher_forcing", "true"]
    if args.preset:
        common += ["--preset", args.preset]
    if args.config_overrides:
        common += ["--config_overrides", args.config_overrides]
    runs = {"baseline": [], "+wav2sem": ["--wav2sem", args.wav2sem]}
    threads = max(1, (os.cpu_count() or 1) // args.jobs)
    script = Path(__file__).resolve().parent.parent / "training" / "train_animation.py"
    pending, rows, by_dataset, own = list(runs.items()), {}, {}, {}
    while pending:  # `--jobs` runs at a time, each a fresh process with its share of the cores
        batch, pending = pending[: args.jobs], pending[args.jobs :]
        processes = {}
        for name, extra in batch:
            folder = out / name.strip("+")
            command = [sys.executable, str(script), *common, "--output_dir", str(folder), "--cpu_threads", str(threads), *extra]
            log = open(out / f"{name.strip('+')}.log", "w")
            processes[name] = (subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT), folder)
        for name, (process, folder) in processes.items():
            if process.wait() != 0:
                raise RuntimeError(f"The {name} run failed; see {out / (name.strip('+') + '.log')}.")
            summary = json.loads((folder / "results.json").read_text())
            rows[name] = {**summary["metrics"], "train_time_s": summary.get("train_time_s_all_stages",
                                                                            summary["train_time_s"]),
                          "steps": summary["steps"]}
            if "stages" in summary:
                rows[name]["stages"] = summary["stages"]
            for dataset, metrics in summary.get("metrics_by_dataset", {}).items():
                by_dataset.setdefault(dataset, {})[name] = metrics
            for dataset, metrics in summary.get("sequence_metrics_by_dataset", {}).items():
                own.setdefault(dataset, {})[name] = metrics
    first = next(iter(folders))
    for dataset, folder in folders.items():
        by_dataset.setdefault(dataset, {})["static template (no model)"] = static_template_row(folder, dataset)
    rows["static template (no model)"] = by_dataset[first]["static template (no model)"]
    base, fused = rows["baseline"], rows["+wav2sem"]
    result = {
        "benchmark": f"{args.model}_table",
        "model": args.model,
        "data_dir": args.data_dir or folders,
        "audio_encoder": encoder if args.audio_encoder else "random HuBERT, small geometry (seed %d)" % args.seed,
        "wav2sem": args.wav2sem,
        "settings": {k: v for k, v in vars(args).items() if k not in ("func",)},
        "rows": rows,
        "ratios_wav2sem_over_baseline": {
            k: (fused[k] / base[k] if base.get(k) not in (None, 0) and fused.get(k) is not None else None)
            for k in ("lve", "mve", "fdd")
        },
        "units": "LVE, MVE x1e-5 (metres^2 / metres); FDD x1e-5",
    }
    if len(folders) > 1:  # every dataset's rows, scored apart; the model's own per-sequence figures beside them
        result["rows_by_dataset"] = by_dataset
        result["ratios_by_dataset"] = {
            dataset: {k: (r["+wav2sem"][k] / r["baseline"][k] if r["baseline"].get(k) not in (None, 0)
                          and r["+wav2sem"].get(k) is not None else None) for k in ("lve", "mve", "fdd")}
            for dataset, r in by_dataset.items()
        }
        result["units"] = {d: f"LVE, MVE x{get_animation_dataset(d).lve_scale:g}; FDD x{get_animation_dataset(d).fdd_scale:g}"
                           for d in folders}
        if own:
            result["sequence_metrics_by_dataset"] = own
            result["sequence_metrics_units"] = "LVE, LVD per sequence in the model's scaled space (BIWI x 0.2), no 1e-5"
    (out / "table.json").write_text(json.dumps(result, indent=1) + "\n")
    return result


def speed(args) -> dict:
    """Whole `predict` and decoder-only frames/s, cached vs naive, FaceFormer VOCASET over a wav2vec2-base-size encoder
    (`--model codetalker`: CodeTalker, see `codetalker_speed`)."""
    if args.model == "codetalker":
        return codetalker_speed(args)
    torch.manual_seed(0)
    torch.set_num_threads(args.threads or torch.get_num_threads())
    config = FaceFormerConfig.from_preset("vocaset", audio_config=Wav2Vec2Config())
    model = FaceFormerForAnimation(config).eval()
    with torch.no_grad():  # move the zero output layer so the loop feeds back real motion
        model.vertice_map_r.weight.normal_(0, 1e-3)
    audio = torch.randn(1, int(args.seconds * 16000))
    template = torch.zeros(1, config.vertice_dim)
    with torch.no_grad():
        memory = model.audio_feature_map(model.encode_audio(audio)[0])
        style = model._style(0, None, 1, memory.device, memory.dtype)
    frames = memory.shape[1]

    def timed(fn, repeats):
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            with torch.no_grad():
                fn()
            times.append(time.perf_counter() - start)
        return statistics.median(times)

    results = {}
    for name, use_cache, repeats in (("cached", True, args.repeats), ("naive", False, max(1, args.repeats // 2))):
        loop = model._autoregress_cached if use_cache else model._autoregress_naive
        decoder = timed(lambda: loop(memory, style, frames), repeats)
        whole = timed(lambda: model.predict(audio, template, 0, use_cache=use_cache), repeats)
        results[name] = {"decoder_frames_per_s": frames / decoder, "predict_frames_per_s": frames / whole}
    with torch.no_grad():
        same = torch.allclose(
            model.predict(audio, template, 0, use_cache=True).vertices,
            model.predict(audio, template, 0, use_cache=False).vertices, atol=1e-5,
        )
    return {
        "benchmark": "faceformer_inference",
        "seconds": args.seconds,
        "frames": frames,
        "threads": torch.get_num_threads(),
        "encoder": "wav2vec2-base geometry (random)",
        "results": results,
        "speedup_decoder": results["cached"]["decoder_frames_per_s"] / results["naive"]["decoder_frames_per_s"],
        "speedup_predict": results["cached"]["predict_frames_per_s"] / results["naive"]["predict_frames_per_s"],
        "same_vertices": same,
    }


def codetalker_speed(args) -> dict:
    """CodeTalker at the published VOCASET size (wav2vec2-base-size encoder, d 1024 x 6 layers, a 1024-wide 6-layer
    VQ-VAE, 15,069 values per frame), one clip of `--seconds`: whole `predict` frames/s with the cached loop and with
    the original's naive one (each timed `--repeats` times, median), the encoder's share timed apart, and whether both
    give the same vertices. The stage-1 decoder re-runs over the quantised prefix in both (it is non-causal)."""
    torch.manual_seed(0)
    torch.set_num_threads(args.threads or torch.get_num_threads())
    config = CodeTalkerConfig.from_preset("vocaset", audio_config=Wav2Vec2Config())
    model = CodeTalkerForAnimation(config).eval()
    with torch.no_grad():  # move the zero feat_map and spread the codebook, so the loop feeds back varied motion
        model.feat_map.weight.normal_(0, 0.02)
        model.autoencoder.quantize.embedding.weight.normal_(0, 1.0)
    audio = torch.randn(1, int(args.seconds * 16000))
    template = torch.zeros(1, config.vertice_dim)

    def timed(fn, repeats):
        times, value = [], None
        for _ in range(repeats):
            start = time.perf_counter()
            with torch.no_grad():
                value = fn()
            times.append(time.perf_counter() - start)
        return statistics.median(times), value

    encode_s, (features, frames) = timed(lambda: model.encode_audio(audio), args.repeats)
    frames = frames[0]
    results, outputs = {}, {}
    for name, use_cache in (("cached", True), ("naive", False)):
        seconds, output = timed(lambda: model.predict(audio, template, 0, use_cache=use_cache), args.repeats)
        outputs[name] = output
        results[name] = {
            "predict_frames_per_s": frames / seconds,
            "predict_s": seconds,
            "decoder_frames_per_s": frames / max(seconds - encode_s, 1e-9),
        }
    same = torch.allclose(outputs["cached"].vertices, outputs["naive"].vertices, atol=1e-5)
    return {
        "benchmark": "codetalker_inference",
        "seconds": args.seconds,
        "frames": frames,
        "threads": torch.get_num_threads(),
        "repeats": args.repeats,
        "encoder": "wav2vec2-base geometry (random)",
        "encoder_s": encode_s,
        "results": results,
        "speedup_decoder": results["cached"]["decoder_frames_per_s"] / results["naive"]["decoder_frames_per_s"],
        "speedup_predict": results["cached"]["predict_frames_per_s"] / results["naive"]["predict_frames_per_s"],
        "same_vertices": same,
        "max_abs_diff": float((outputs["cached"].vertices - outputs["naive"].vertices).abs().max()),
        "same_codes": bool(torch.equal(outputs["cached"].code_indices, outputs["naive"].code_indices)),
    }


def throughput(args) -> dict:
    """Training steps and inference of one model over a random wav2vec2-base-size encoder on `--seconds` of audio:
    frames/s, each timing the median of `--repeats` (the first call is a warm-up). `--batch_sizes 1 4` measures each
    batch size (items of equal length, no padding) side by side in this one process, with ratios to the first."""
    if args.batch_sizes:
        rows = []
        for batch_size in args.batch_sizes:
            rows.append(throughput(argparse.Namespace(**{**vars(args), "batch_sizes": None, "batch_size": batch_size})))
        first = rows[0]
        return {
            "benchmark": f"{args.model}_throughput_batch_sizes",
            "rows": rows,
            "train_frames_per_s_over_first": [r["train_frames_per_s"] / first["train_frames_per_s"] for r in rows],
            "predict_frames_per_s_over_first": [r["predict_frames_per_s"] / first["predict_frames_per_s"] for r in rows],
        }
    torch.manual_seed(0)
    torch.set_num_threads(args.threads or torch.get_num_threads())
    recipe = get_recipe(args.model)
    config = recipe.config_class.from_preset(args.preset or "vocaset", audio_config=Wav2Vec2Config(layerdrop=0.0))
    model = recipe.model_class(config)
    audio = torch.randn(args.batch_size, int(args.seconds * 16000))
    frames = int(args.seconds * config.frame_rate)
    template = torch.zeros(args.batch_size, config.vertice_dim)
    labels = torch.randn(args.batch_size, frames, config.vertice_dim) * 1e-3
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    kwargs = recipe.train_kwargs(argparse.Namespace(teacher_forcing=False))

    def train_step():
        loss = model(audio, template, 0, labels=labels, **kwargs).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()

    def timed(fn, repeats):
        fn()
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            fn()
            times.append(time.perf_counter() - start)
        return statistics.median(times)

    model.train()
    train_s = timed(train_step, args.repeats)
    model.eval()
    with torch.no_grad():
        predict_s = timed(lambda: model.predict(audio, template, 0, num_frames=frames), args.repeats)
    return {
        "benchmark": f"{args.model}_throughput",
        "preset": config.dataset,
        "seconds": args.seconds,
        "batch_size": args.batch_size,
        "frames_per_item": frames,
        "threads": torch.get_num_threads(),
        "encoder": "wav2vec2-base geometry (random), conv feature encoder frozen",
        "parameters": sum(p.numel() for p in model.parameters()),
        "trainable_parameters": sum(p.numel() for p in model.parameters() if p.requires_grad),
        "train_frames_per_s": args.batch_size * frames / train_s,
        "predict_frames_per_s": args.batch_size * frames / predict_s,
        "train_step_s": train_s,
        "predict_s": predict_s,
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    t = commands.add_parser("table")
    t.add_argument("--data_dir", help="the dataset's folder (or --datasets)")
    t.add_argument("--datasets", nargs="+", help="several datasets in one run: NAME=DIR ... (unitalker)")
    t.add_argument("--dataset_repeats", nargs="+", help="NAME=N oversampling with --datasets")
    t.add_argument("--wav2sem", required=True)
    t.add_argument("--output_dir", required=True)
    t.add_argument("--model", default="faceformer", choices=sorted(ANIMATION_RECIPES))
    t.add_argument("--preset", help="the model config's preset (default: the dataset's)")
    t.add_argument("--audio_encoder")
    t.add_argument("--dataset", default="vocaset")
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--num_train_epochs", type=int, default=100)
    t.add_argument("--max_train_steps", type=int)
    t.add_argument("--mixed_precision", default="no")
    t.add_argument("--teacher_forcing", action="store_true")
    t.add_argument("--config_overrides", help="JSON of config fields over the preset (train_animation's)")
    t.add_argument("--jobs", type=int, default=1, help="runs at a time (each gets cores / jobs threads)")
    t.set_defaults(func=table)
    s = commands.add_parser("speed")
    s.add_argument("--model", default="faceformer", choices=["faceformer", "codetalker"])
    s.add_argument("--seconds", type=float, default=10.0)
    s.add_argument("--repeats", type=int, default=3)
    s.add_argument("--threads", type=int)
    s.set_defaults(func=speed)
    p = commands.add_parser("throughput")
    p.add_argument("--model", default="voca", choices=sorted(ANIMATION_RECIPES))
    p.add_argument("--preset")
    p.add_argument("--seconds", type=float, default=10.0)
    p.add_argument("--batch_size", type=int, default=1)
    p.add_argument("--batch_sizes", type=int, nargs="+", help="several batch sizes side by side in one run (rows "
                   "and frames/s ratios to the first)")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int)
    p.set_defaults(func=throughput)
    args = parser.parse_args(argv)
    print(json.dumps(args.func(args), indent=1))


if __name__ == "__main__":
    main()
