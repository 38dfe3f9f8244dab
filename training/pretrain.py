"""Pretrain Wav2Sem: align the mean-pooled audio vector F_s with a text teacher's sentence embedding.

    accelerate launch training/pretrain.py                       # embedded sample corpus, `small`, variant c
    accelerate launch training/pretrain.py --variant m --preset paper --recipe paper --lr_scheduler_type constant \
        --dataset_name openslr/librispeech_asr --dataset_config all \
        --train_split "train.clean.100+train.clean.360+train.other.500" --eval_split validation.clean \
        --streaming --max_train_steps 500000
    accelerate launch --multi_gpu --num_processes 2 training/pretrain.py --cpu   # two CPU (gloo) processes

One process on CPU or GPU, several through `accelerate launch`; everything distributed is Accelerate's.
"""

import dataclasses
import json
import math
import os
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

if __package__ in (None, ""):  # `accelerate launch training/pretrain.py` runs this file as a script:
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # make the checkout's package importable
    __package__ = "training"  # and resolve the relative imports below in it (PEP 366)

import torch
from accelerate import Accelerator, DistributedDataParallelKwargs
from accelerate import PartialState
from accelerate.utils import broadcast_object_list, gather_object, parse_flag_from_env, send_to_device, set_seed
from huggingface_hub import EvalResult, ModelCardData
from tqdm.auto import tqdm
from transformers import HfArgumentParser, get_scheduler

from modeling_wav2sem import Wav2SemConfig, Wav2SemModel
from . import pretraining_data as data_lib
from .common.metrics_log import JsonLinesLogger
from .common.checkpoints import checkpoint_step, resolve_checkpoint, save_checkpoint
from .evaluation import alignment_metrics
from .common.runtime import CpuThreads, end_training, keep_freed_memory, widen_onednn_primitive_cache
from .common.hub import HubUploadError, push_folder_to_hub, resolve_token, write_model_card
from .objectives import semantic_loss, target_statistics

VARIANT_TARGETS = {"c": "cls", "m": "mean"}
TRACKER_PROJECT = "wav2sem-pretrain"  # accelerate's trackers write to <output_dir>/<this>/: never uploaded
SECRET_ARGS = ("hub_token",)  # never logged, saved or uploaded

# Optimisation recipes, one registry. `paper`: the official script's settings (AdamW 1e-5, StepLR every 20 epochs
# x0.5, 200 epochs, batch size 1, fp32, no warm-up, no clipping). `fast`: what trains the small preset on a CPU.
RECIPES = {
    "paper": dict(
        learning_rate=1e-5, weight_decay=0.01, lr_scheduler_type="step", lr_step_epochs=20, lr_step_gamma=0.5,
        num_train_epochs=200, max_train_steps=None, warmup_ratio=0.0, max_grad_norm=None, per_device_train_batch_size=1,
        mixed_precision="no",
    ),
    "fast": dict(
        learning_rate=5e-4, weight_decay=0.01, lr_scheduler_type="cosine", warmup_ratio=0.08, max_grad_norm=1.0,
        per_device_train_batch_size=8, max_train_steps=360, num_train_epochs=None,
    ),
}

# The step budget: a recipe's applies only when the user gives neither field (the unset one then stays unset).
STEP_BUDGET_FIELDS = ("max_train_steps", "num_train_epochs")
RECIPE_BUDGETS = ", ".join(
    f"{name}: {r['max_train_steps']} steps" if r["max_train_steps"] else f"{name}: {r['num_train_epochs']} epochs"
    for name, r in RECIPES.items()
)


@dataclasses.dataclass
class PretrainArguments:
    # Data: the Hub (or a local Parquet/Arrow copy), local openslr folders, or by default the embedded sample corpus.
    dataset_name: str | None = dataclasses.field(default=None, metadata={"help": "e.g. openslr/librispeech_asr"})
    dataset_config: str | None = dataclasses.field(default=None, metadata={"help": "e.g. all, clean, other"})
    train_split: str = dataclasses.field(default="train", metadata={"help": "'+'-joined splits to concatenate"})
    eval_split: str = dataclasses.field(default="validation", metadata={"help": "split for evaluation"})
    streaming: bool = dataclasses.field(
        default=False,
        metadata={
            "help": "stream the --dataset_name train split (the 960 h) instead of preparing it: needs --max_train_steps "
            "(passes repeat, reshuffled, until then); utterances are filtered, counted and given teacher targets as "
            "they are read (no cache: a stream has no fingerprint), batched by length within buffers of "
            f"{data_lib.BUCKET_BATCHES} batches; target statistics come from the stream's first "
            f"{data_lib.STREAM_STATISTICS_SAMPLES} usable utterances; resuming re-reads the stream up to the "
            "checkpoint. The eval split is read once through a stream and cached."
        },
    )
    data_dir: list[str] | None = dataclasses.field(
        default=None, metadata={"help": "local openslr folders (LibriSpeech/<subset>); several allowed", "nargs": "+"}
    )
    eval_data_dir: list[str] | None = dataclasses.field(
        default=None, metadata={"help": "local openslr folders for evaluation", "nargs": "+"}
    )
    min_duration: float = 0.5
    max_duration: float = 20.0
    crop_seconds: float | None = dataclasses.field(default=None, metadata={"help": "crop longer utterances"})
    max_eval_samples: int | None = None
    train_eval_samples: int = dataclasses.field(default=64, metadata={"help": "training utterances also evaluated (0: none)"})
    # Teacher and model.
    teacher: str | None = dataclasses.field(
        default=None, metadata={"help": "text encoder folder or Hub id (paper: bert-base-uncased); offline MiniLM by default"}
    )
    variant: str = dataclasses.field(default="c", metadata={"help": "c: teacher [CLS] vector; m: mean of token vectors"})
    preset: str = dataclasses.field(
        default="small", metadata={"help": "paper, small, tiny, or frontend (the trainable part over --front_end)"}
    )
    front_end: str | None = dataclasses.field(
        default=None,
        metadata={"help": "a frozen pre-trained speech encoder (folder or Hub id: Whisper, HuBERT, Wav2Vec2, ...) whose "
                  "frames replace the preset's conv feature encoder; its weights are saved with the model. Default: "
                  "none, the paper's from-raw-audio architecture"},
    )
    front_end_audio_context: str | None = dataclasses.field(
        default=None,
        metadata={"help": "Whisper front end: 'window' (30 s windows, as Whisper was trained; default) or 'utterance' "
                  "(the encoder sees only the clip: several times faster on short clips)"},
    )
    standardize_targets: bool = dataclasses.field(
        default=False,
        metadata={"help": "train on targets standardised with training-set statistics (folded back in); off by default "
                  "as in the paper: on the main job's budget plain L1 fitted better (benchmarks/bench_objectives.py)"},
    )
    cache_front_end_frames: bool = dataclasses.field(
        default=False,
        metadata={"help": "with --front_end: run the frozen front end once per utterance and cache its frames on disk "
                  "(datasets cache, float16: 38 KB per second of audio for Whisper tiny), so that training steps "
                  "run only the trainable part; --crop_seconds then crops frames of the whole utterance's encoding. "
                  "Not with --streaming"},
    )
    infonce_weight: float = dataclasses.field(
        default=0.0,
        metadata={"help": "weight of an in-batch InfoNCE term (symmetric, cosine similarities / temperature) added to "
                  "the L1: what makes held-out retrieval learn on a frozen front end (README)"},
    )
    infonce_temperature: float = 0.07
    # Optimisation (a recipe fills the fields left unset; its step budget only when neither budget field is given).
    recipe: str = dataclasses.field(default="fast", metadata={"help": "fast (CPU-friendly) or paper (the official)"})
    learning_rate: float | None = None
    weight_decay: float | None = None
    lr_scheduler_type: str | None = None
    lr_step_epochs: int | None = None
    lr_step_gamma: float | None = None
    warmup_ratio: float | None = None
    max_grad_norm: float | None = None
    num_train_epochs: int | None = dataclasses.field(
        default=None,
        metadata={"help": "epochs to train (--max_train_steps wins when both are given); with neither, the "
                  f"recipe's budget applies ({RECIPE_BUDGETS})"},
    )
    max_train_steps: int | None = dataclasses.field(
        default=None,
        metadata={"help": "optimisation steps to train; with neither this nor --num_train_epochs, the recipe's "
                  f"budget applies ({RECIPE_BUDGETS})"},
    )
    per_device_train_batch_size: int | None = None
    per_device_eval_batch_size: int = 16
    gradient_accumulation_steps: int = 1
    mixed_precision: str | None = dataclasses.field(
        default=None, metadata={"help": "no or bf16 (fp16 refused on CPU); defaults to accelerate's setting, else bf16 where it is faster (GPU; CPU by a matmul probe), else fp32"}
    )
    gradient_checkpointing: bool = False
    seed: int = 42
    cpu: bool = dataclasses.field(default=False, metadata={"help": "train on CPU even if a GPU is present"})
    keep_freed_memory: bool = dataclasses.field(
        default=True,
        metadata={"help": "glibc malloc keeps freed memory for large tensors instead of unmapping it (faster steps on CPU)"},
    )
    cpu_threads: int | None = dataclasses.field(
        default=None,
        metadata={"help": "CPU threads per process (default: one process uses the cores other processes leave free, "
                  "re-checked every 20 s; several processes: cores / processes; 0 keeps torch's setting)"},
    )
    # Logging, checkpoints, output.
    output_dir: str | None = dataclasses.field(default=None, metadata={"help": "defaults to wav2sem-c / wav2sem-m"})
    logging_steps: int = 10
    eval_steps: int = 120
    checkpointing_steps: int = 120
    checkpoints_total_limit: int = 2
    resume_from_checkpoint: str | None = dataclasses.field(default=None, metadata={"help": "'latest' or a folder"})
    report_to: str = dataclasses.field(default="tensorboard", metadata={"help": "accelerate tracker, or 'none'"})
    cache_dir: str | None = dataclasses.field(default=None, metadata={"help": "datasets cache for decoded metadata"})
    push_to_hub: bool = False
    hub_model_id: str | None = None
    hub_token: str | None = None
    hub_private_repo: bool = False

    def __post_init__(self):
        if self.variant not in VARIANT_TARGETS:
            raise ValueError(f"--variant must be 'c' or 'm', got {self.variant!r}.")
        if self.recipe not in RECIPES:
            raise ValueError(f"--recipe must be one of {sorted(RECIPES)}, got {self.recipe!r}.")
        if self.streaming and self.max_train_steps is None:
            raise ValueError(
                "--streaming needs --max_train_steps: a stream has no length, so neither the number of steps in an "
                "epoch nor the LR schedule's horizon can be derived from it."
            )
        for name, value in self.recipe_defaults().items():
            if getattr(self, name) is None:
                setattr(self, name, value)
        if self.output_dir is None:
            self.output_dir = f"wav2sem-{self.variant}"
        if self.push_to_hub and not self.hub_model_id:
            raise ValueError("--push_to_hub needs --hub_model_id ORG/NAME.")
        if self.max_train_steps is None and self.num_train_epochs is None:
            raise ValueError("Give --max_train_steps or --num_train_epochs.")
        if self.cache_front_end_frames and not self.front_end:
            raise ValueError("--cache_front_end_frames caches the frames of a frozen --front_end; none was given.")
        if self.cache_front_end_frames and self.streaming:
            raise ValueError(
                "--cache_front_end_frames caches frames per prepared split; a --streaming train split is read once "
                "per pass without a cache. Drop one of the two."
            )
        if self.streaming and self.lr_scheduler_type == "step":
            raise ValueError(
                "--lr_scheduler_type step counts epochs, which a stream does not know in advance; with --streaming use "
                "a schedule in steps (e.g. --lr_scheduler_type constant, cosine or linear)."
            )

    def recipe_defaults(self) -> dict:
        """The recipe's settings, without its step budget when the user gave one (either field of it)."""
        defaults = dict(RECIPES[self.recipe])
        if any(getattr(self, name) is not None for name in STEP_BUDGET_FIELDS):
            for name in STEP_BUDGET_FIELDS:
                defaults.pop(name)
        return defaults


def parse_args(argv=None) -> PretrainArguments:
    (args,) = HfArgumentParser(PretrainArguments).parse_args_into_dataclasses(args=argv)
    return args


def loggable_args(args: PretrainArguments) -> dict:
    """The arguments as a dict for trackers and `training_summary.json`, without secrets (`SECRET_ARGS`)."""
    return {name: value for name, value in dataclasses.asdict(args).items() if name not in SECRET_ARGS}


def matmul_seconds(dtypes: tuple[torch.dtype, ...], size: int = 768, rounds: int = 5) -> dict[torch.dtype, float]:
    """Best time of a `size` x `size` matmul in each dtype on this CPU, measured in interleaved rounds so that a
    burst of load from elsewhere hits every dtype alike (a probe of about 0.1 s)."""
    pairs = {dtype: (torch.randn(size, size).to(dtype), torch.randn(size, size).to(dtype)) for dtype in dtypes}
    best = {dtype: float("inf") for dtype in dtypes}
    for round_index in range(rounds + 1):  # round 0 warms up
        for dtype, (a, b) in pairs.items():
            start = time.perf_counter()
            a @ b
            if round_index:
                best[dtype] = min(best[dtype], time.perf_counter() - start)
    return best


def bf16_is_fast(cpu: bool) -> bool:
    """Whether bf16 autocast speeds training up here: always on a GPU; on a CPU when a bf16 matmul probe beats fp32 by
    25%. CPU support varies: measured on 2-core machines, an AMD EPYC ran bf16 matmuls at 835 GFLOP/s against 200 in
    fp32, an Intel Xeon with AVX-512 BF16 but no AMX at 168 against 334."""
    if not cpu:
        return True
    seconds = matmul_seconds((torch.float32, torch.bfloat16))
    return seconds[torch.bfloat16] < 0.75 * seconds[torch.float32]


def probe_on_main_process(probe: Callable[[], bool], cpu: bool) -> bool:
    """Run `probe` on the main process and give every process its answer, so that all of them train alike."""
    state = PartialState(cpu=cpu)
    answer = [probe() if state.is_main_process else None]
    if state.num_processes > 1:
        broadcast_object_list(answer, from_process=0)
    return answer[0]


def resolve_mixed_precision(args: PretrainArguments, cpu: bool) -> str:
    """`--mixed_precision`, else a non-default `accelerate launch --mixed_precision`, else bf16 where it is fast (GPU,
    CPUs whose bf16 matmuls are faster) and fp32 elsewhere (`accelerate launch` exports `no` when nothing was configured, so pass
    `--mixed_precision no` to this script to force fp32). fp16 is refused on CPU, where it is far slower than fp32."""
    from_launcher = os.environ.get("ACCELERATE_MIXED_PRECISION")
    requested = args.mixed_precision or (from_launcher if from_launcher not in (None, "no") else None)
    if requested is None:
        requested = "bf16" if probe_on_main_process(lambda: bf16_is_fast(cpu), cpu) else "no"
    if requested == "fp16" and cpu:
        raise ValueError("fp16 on CPU is unusably slow; use --mixed_precision bf16 or no.")
    return requested


def build_model(args: PretrainArguments, target_dim: int, teacher_name: str) -> Wav2SemModel:
    fields = {"target": VARIANT_TARGETS[args.variant], "text_embed_dim": target_dim, "teacher_name_or_path": teacher_name}
    if args.front_end:
        return Wav2SemModel.from_front_end(
            args.front_end, preset=args.preset, audio_context=args.front_end_audio_context, **fields
        )
    if args.front_end_audio_context:
        raise ValueError("--front_end_audio_context needs --front_end.")
    return Wav2SemModel(Wav2SemConfig.from_preset(args.preset, **fields))


def build_scheduler(args: PretrainArguments, optimizer, total_steps: int, steps_per_epoch: int, num_processes: int):
    """LR schedule with warm-up (`get_scheduler`), or the official StepLR counted in epochs (`step`).

    Accelerate steps a prepared scheduler once per process, so its horizon is multiplied by the process count.
    """
    if args.lr_scheduler_type == "step":
        period = args.lr_step_epochs * steps_per_epoch * num_processes
        return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: args.lr_step_gamma ** (step // max(period, 1)))
    return get_scheduler(
        args.lr_scheduler_type,
        optimizer,
        num_warmup_steps=int(args.warmup_ratio * total_steps) * num_processes,
        num_training_steps=total_steps * num_processes,
    )


def model_inputs(batch: dict) -> dict:
    """The model's inputs in a batch: audio and its mask, or cached front-end frames and theirs (not the labels)."""
    return {name: value for name, value in batch.items() if name != "labels"}


@torch.no_grad()
def evaluate(model, dataloader, accelerator, mean_target: torch.Tensor) -> dict[str, float]:
    """Alignment metrics over a whole dataloader (gathered across processes) with their baselines."""
    was_training = model.training
    model.eval()
    predictions, targets = [], []
    for batch in dataloader:
        with accelerator.autocast():
            embeds = model(**model_inputs(batch)).semantic_embeds
        embeds, labels = accelerator.gather_for_metrics((embeds.float(), batch["labels"].float()))
        predictions.append(embeds.cpu())
        targets.append(labels.cpu())
    model.train(was_training)
    return alignment_metrics(torch.cat(predictions), torch.cat(targets), mean_target.cpu())


def format_metrics(name: str, metrics: dict) -> str:
    return (
        f"{name}: L1 {metrics['l1']:.4f} (mean-target {metrics['mean_target_l1']:.4f}) | cosine {metrics['cosine']:.4f} "
        f"(mean-target {metrics['mean_target_cosine']:.4f}) | R@1 {metrics['r@1']:.3f} R@5 {metrics['r@5']:.3f} "
        f"(chance {metrics['chance_r@1']:.3f} / {metrics['chance_r@5']:.3f}, n={metrics['num_utterances']})"
    )


def check_hub_push(args: PretrainArguments):
    """With `--push_to_hub`, fail at start-up, before any data or training work, when no token is available (the
    `--hub_model_id` is checked when the arguments are parsed)."""
    if args.push_to_hub:
        try:
            resolve_token(args.hub_model_id, args.hub_token)
        except HubUploadError as error:
            raise SystemExit(f"error: {error}") from None


def main(argv=None):
    args = parse_args(argv)
    check_hub_push(args)
    if args.keep_freed_memory:
        keep_freed_memory()
    widen_onednn_primitive_cache()  # before the first oneDNN op (the precision probe's matmul)
    output_dir = Path(args.output_dir)
    on_cpu = args.cpu or parse_flag_from_env("ACCELERATE_USE_CPU") or not torch.cuda.is_available()
    mixed_precision = resolve_mixed_precision(args, on_cpu)
    preset = Wav2SemConfig.from_preset(args.preset)
    accelerator = Accelerator(
        cpu=args.cpu,
        mixed_precision=mixed_precision,
        gradient_accumulation_steps=args.gradient_accumulation_steps,
        log_with=None if args.report_to == "none" else args.report_to,
        project_dir=str(output_dir),
        # LayerDrop skips whole layers at random, so under DDP some parameters get no gradient in a step.
        kwargs_handlers=[DistributedDataParallelKwargs(find_unused_parameters=preset.layerdrop > 0)],
    )
    set_seed(args.seed)
    cpu_threads = None
    if accelerator.device.type == "cpu" and args.cpu_threads != 0:
        # `accelerate launch` pins one thread per process unless OMP_NUM_THREADS is set: use the cores other
        # processes leave free (re-checked as training goes, see `CpuThreads`).
        cpu_threads = CpuThreads(args.cpu_threads, accelerator.num_processes)
    started = time.time()
    main_process = accelerator.is_main_process

    def say(message: str):
        if main_process:
            tqdm.write(message)  # keeps progress bars intact

    # ---- data and teacher targets (computed once, cached on disk; the other processes wait and reuse the cache) ----
    with accelerator.main_process_first():
        bundle = data_lib.build_pretraining_data(args, seed=args.seed, device=accelerator.device)
    say(f"Data: {bundle.report}")
    train_targets = bundle.train_targets  # (N, D) float tensor, in dataset order
    target_dim = train_targets.shape[1]
    mean_target = train_targets.mean(0)

    model = build_model(args, target_dim, bundle.teacher_name)
    if args.standardize_targets:
        model.set_target_statistics(*target_statistics(train_targets))
    if args.gradient_checkpointing:
        model.activation_checkpointing_enable()
    say(f"Model: preset {args.preset}, {sum(p.numel() for p in model.parameters()):,} parameters, target "
        f"{model.config.target} ({target_dim}-d) from {bundle.teacher_description}; precision {mixed_precision}")

    if args.cache_front_end_frames:  # the frozen front end runs once per utterance, here, instead of every step
        with accelerator.main_process_first():
            data_lib.cache_front_end_frames(bundle, model.to(accelerator.device), args.per_device_eval_batch_size,
                                            accelerator.device)
    eval_dataset, train_eval_dataset = bundle.eval, bundle.train_sample
    normalize_audio = model.config.normalizes_audio  # a Whisper front end takes the raw waveform
    # Batches padded to few lengths (`data_lib.LENGTH_BUCKET_RATIO`), except over a frozen front end, whose frames must
    # pad alike whether it computes them from audio or they come from the cache (the same training either way).
    bucket_ratio = 0.0 if model.front_end is not None else data_lib.LENGTH_BUCKET_RATIO
    train_loader, batch_sampler = data_lib.make_train_dataloader(
        bundle, args.per_device_train_batch_size, args.crop_seconds, seed=args.seed,
        process_index=accelerator.process_index, num_processes=accelerator.num_processes,
        normalize_audio=normalize_audio, bucket_ratio=bucket_ratio,
    )
    eval_loader = data_lib.make_eval_dataloader(
        eval_dataset, bundle, args.per_device_eval_batch_size, args.crop_seconds, normalize_audio, bucket_ratio
    )
    train_eval_loader = data_lib.make_eval_dataloader(
        train_eval_dataset, bundle, args.per_device_eval_batch_size, args.crop_seconds, normalize_audio, bucket_ratio
    )

    trainable = [p for p in model.parameters() if p.requires_grad]  # a front end is frozen
    optimizer = torch.optim.AdamW(trainable, lr=args.learning_rate, weight_decay=args.weight_decay)
    if cpu_threads is not None:
        cpu_threads.follow(optimizer)
    if bundle.streaming:  # no length: the step budget is --max_train_steps, the schedule is in steps
        steps_per_epoch, total_steps, num_epochs = None, args.max_train_steps, None
    else:
        steps_per_epoch = math.ceil(len(batch_sampler) / accelerator.num_processes / args.gradient_accumulation_steps)
        total_steps = args.max_train_steps or args.num_train_epochs * steps_per_epoch
        num_epochs = math.ceil(total_steps / steps_per_epoch)
    scheduler = build_scheduler(args, optimizer, total_steps, steps_per_epoch, accelerator.num_processes)

    if bundle.streaming:
        # Each process reads its own part of the stream (see `make_train_dataloader`): the loader is not prepared.
        model, optimizer, eval_loader, train_eval_loader, scheduler = accelerator.prepare(
            model, optimizer, eval_loader, train_eval_loader, scheduler
        )
    else:
        model, optimizer, train_loader, eval_loader, train_eval_loader, scheduler = accelerator.prepare(
            model, optimizer, train_loader, eval_loader, train_eval_loader, scheduler
        )
    shift = accelerator.unwrap_model(model).target_shift
    scale = accelerator.unwrap_model(model).target_scale

    if args.report_to != "none":
        hyperparameters = {k: v for k, v in loggable_args(args).items() if isinstance(v, (int, float, str, bool))}
        accelerator.init_trackers(TRACKER_PROJECT, config=hyperparameters)
    metrics_log = JsonLinesLogger(output_dir / "metrics.jsonl", main_process)

    # ---- resume ----
    completed_steps, start_epoch, skip_batches = 0, 0, 0
    checkpoint_dir = output_dir / "checkpoints"
    if args.resume_from_checkpoint:
        checkpoint = resolve_checkpoint(checkpoint_dir, args.resume_from_checkpoint)
        if checkpoint is None:
            say(f"No checkpoint in {checkpoint_dir} yet: starting from scratch.")
        else:
            accelerator.load_state(str(checkpoint))
            completed_steps = checkpoint_step(checkpoint)
            if bundle.streaming:
                # Same seed, same stream order: read the stream again up to the checkpoint's position.
                batch_sampler.skip_batches = completed_steps * args.gradient_accumulation_steps
                say(f"Resumed from {checkpoint} at step {completed_steps}: re-reading the stream's first "
                    f"{batch_sampler.skip_batches} batches (per process) to get back to its position.")
            else:
                start_epoch = completed_steps // steps_per_epoch
                skip_batches = (completed_steps % steps_per_epoch) * args.gradient_accumulation_steps
                say(f"Resumed from {checkpoint} at step {completed_steps} (epoch {start_epoch}, batch {skip_batches}).")
        metrics_log.drop_after(completed_steps)  # the killed run's later steps are logged again

    def run_evaluation(step: int) -> dict:
        results = {"eval": evaluate(model, eval_loader, accelerator, mean_target)}
        if len(train_eval_dataset):  # --train_eval_samples 0 turns the training-sample evaluation off
            results["train_sample"] = evaluate(model, train_eval_loader, accelerator, mean_target)
        for name, metrics in results.items():
            say(f"[step {step}] " + format_metrics(name, metrics))
        flat = {f"{name}/{k}": v for name, metrics in results.items() for k, v in metrics.items()}
        accelerator.log(flat, step=step)
        metrics_log.log({"step": step, **flat})
        return results

    def training_batches():
        """(epoch, batch) from where the run starts or resumes; the step budget ends the loop."""
        if completed_steps >= total_steps:  # resumed from the last checkpoint
            return
        if bundle.streaming:
            for batch in train_loader:  # pass after pass, without end
                yield batch_sampler.epoch, send_to_device(batch, accelerator.device)
            return
        for epoch in range(start_epoch, num_epochs):
            first = epoch == start_epoch
            loader = accelerator.skip_first_batches(train_loader, skip_batches) if first else train_loader
            # accelerate's loaders pass their epoch to the batch sampler when iteration starts, but not through the
            # wrapper `skip_first_batches` adds: set both.
            loader.set_epoch(epoch)
            batch_sampler.set_epoch(epoch)
            for batch in loader:
                yield epoch, batch

    progress = tqdm(total=total_steps, initial=completed_steps, disable=not main_process, desc="pretraining")
    model.train()
    final_results = None
    running = {}
    for epoch, batch in training_batches():
        with accelerator.accumulate(model):
            with accelerator.autocast():
                outputs = model(**model_inputs(batch))
            losses = semantic_loss(
                outputs.standardized_embeds, batch["labels"], shift, scale,
                infonce_weight=args.infonce_weight, temperature=args.infonce_temperature,
            )
            accelerator.backward(losses["loss"])
            if accelerator.sync_gradients and args.max_grad_norm:
                accelerator.clip_grad_norm_(model.parameters(), args.max_grad_norm)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad()
        for key, value in losses.items():
            running.setdefault(key, []).append(accelerator.reduce(value.detach(), "mean").item())
        if not accelerator.sync_gradients:
            continue
        completed_steps += 1
        progress.update(1)
        record = {"step": completed_steps, "epoch": epoch, "lr": scheduler.get_last_lr()[0]}
        record.update({key: sum(values) / len(values) for key, values in running.items()})
        running = {}
        metrics_log.log(record)
        if completed_steps % args.logging_steps == 0:
            accelerator.log({f"train/{k}": v for k, v in record.items() if k != "step"}, step=completed_steps)
            progress.set_postfix(loss=f"{record['loss']:.4f}")
        if args.checkpointing_steps and completed_steps % args.checkpointing_steps == 0:
            save_checkpoint(accelerator, checkpoint_dir, completed_steps, args.checkpoints_total_limit)
        if args.eval_steps and completed_steps % args.eval_steps == 0:
            final_results = run_evaluation(completed_steps)
        if completed_steps >= total_steps:
            break
    progress.close()
    if final_results is None or (args.eval_steps and completed_steps % args.eval_steps):
        final_results = run_evaluation(completed_steps)
    train_time = time.time() - started

    if bundle.streaming:  # each process counted the skips in its part of the stream as it read it
        parts = gather_object([(bundle.train.counts, bundle.train.whole_split)])
        bundle.counts["train"] = data_lib.counts_summary(
            sum((counts for counts, _ in parts), Counter()), all(whole for _, whole in parts)
        )
        say(f"Data: {bundle.report}")

    # ---- save the model, its card and the data report ----
    accelerator.wait_for_everyone()
    if main_process:
        unwrapped = accelerator.unwrap_model(model)
        unwrapped.save_pretrained(output_dir)  # with its feature extractor (16 kHz, normalised, attention mask)
        (output_dir / "data_report.json").write_text(json.dumps(bundle.report_dict(), indent=2))
        summary = {
            "steps": completed_steps, "train_time_s": round(train_time, 1), "args": loggable_args(args),
            "final_eval": final_results, "num_processes": accelerator.num_processes, "mixed_precision": mixed_precision,
        }
        (output_dir / "training_summary.json").write_text(json.dumps(summary, indent=2, default=str))
        write_pretraining_card(args, output_dir, bundle, final_results, train_time, accelerator, mixed_precision)
        say(f"Saved {output_dir} after {completed_steps} steps in {train_time / 60:.1f} min.")
    del model, optimizer, scheduler  # the DDP wrapper must go before its process group (see end_training)
    end_training(accelerator)

    if args.push_to_hub and main_process:
        try:
            url = push_folder_to_hub(
                output_dir, args.hub_model_id, token=args.hub_token, private=args.hub_private_repo,
                ignore_patterns=[f"{TRACKER_PROJECT}/*"],
            )
        except HubUploadError as error:
            raise SystemExit(f"error: {error}") from None
        say(f"Pushed to {url}")


def write_pretraining_card(args, output_dir, bundle, results, train_time, accelerator, mixed_precision):
    metrics = results["eval"]
    repo_id = args.hub_model_id or output_dir.name
    card_data = ModelCardData(
        library_name="transformers",
        license="apache-2.0",
        tags=["wav2sem", "audio", "speech", "semantic", "facial-animation"],
        datasets=[bundle.dataset_id] if bundle.dataset_id else None,  # Hub ids only, never local paths
        base_model=None,
        model_name=repo_id,
        eval_results=[
            EvalResult(
                task_type="feature-extraction", dataset_type=bundle.dataset_id or "librispeech-format",
                dataset_name=bundle.dataset_name,
                dataset_split=bundle.eval_split_name, metric_type=name, metric_name=label, metric_value=round(metrics[key], 5),
            )
            for key, name, label in (
                ("l1", "l1", "L1 to teacher"), ("cosine", "cosine", "Cosine to teacher"),
                ("r@1", "recall@1", "Audio-to-text R@1"), ("r@5", "recall@5", "Audio-to-text R@5"),
            )
        ],
    )
    objective = "L1 between F_s and the teacher vector"
    if args.standardize_targets:
        objective += ", on targets standardised with training-set statistics (the inverse is folded into the model)"
    if args.infonce_weight:
        objective += f", plus {args.infonce_weight} x in-batch InfoNCE (temperature {args.infonce_temperature})"
    device = "CPU" if accelerator.device.type == "cpu" else accelerator.device.type.upper()
    write_model_card(
        output_dir,
        "wav2sem",
        card_data,
        model_name=repo_id,
        repo_id=repo_id,
        variant=args.variant,
        variant_description="the teacher's [CLS] vector" if args.variant == "c" else "the mean of the teacher's token vectors",
        preset=args.preset,
        embed_dim=bundle.train_targets.shape[1],
        teacher=bundle.teacher_name,
        teacher_source=bundle.teacher_source,
        data_description=bundle.description,
        num_train=bundle.num_train,
        num_eval=len(bundle.eval),
        skipped=json.dumps(bundle.report_dict().get("skipped", {})),
        text_normalization=bundle.text_normalization,
        objective=objective,
        optimisation=(
            f"recipe {args.recipe}: AdamW lr {args.learning_rate}, weight decay {args.weight_decay}, "
            f"{args.lr_scheduler_type} schedule, warm-up ratio {args.warmup_ratio}, clipping {args.max_grad_norm}, "
            f"batch {args.per_device_train_batch_size} x {accelerator.num_processes} process(es) x "
            f"{args.gradient_accumulation_steps} accumulation, {mixed_precision} precision, seed {args.seed}"
        ),
        hardware=f"{accelerator.num_processes} x {device}",
        train_time=f"{train_time / 60:.1f} minutes",
        eval_split=bundle.eval_split_name,
        metrics=metrics,
        notes=(
            "The predict-the-mean-target row is what a model that ignores the audio scores; chance is random "
            "retrieval. A short run on a small corpus memorises its training audio long before it generalises."
        ),
    )


if __name__ == "__main__":
    main()
