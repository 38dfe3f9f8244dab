"""Generate a synthetic lip-sync dataset in the VOCASET or BIWI processed layout.

The face is a small procedural mesh (:mod:`training.faces`) animated from the phoneme timings of
a LibriSpeech-layout corpus with ``*.alignment.jsonl`` sidecars; the audio is the corpus audio.
Near-homophones get visibly different mouths (/i:/ vs /I/, /p b m/ closure vs /t d/, /f v/, rounded
vs spread vowels), so a speech-driven face model trained on it has to tell them apart.

Usage::

    # the committed sample (training/sample_data/vocaset, about 7.8 MB)
    python -m training.make_sample_faces --corpus training/sample_data/LibriSpeech \\
        --output_dir training/sample_data/vocaset --format vocaset --seed 0 --max_sentences train=1,val=1,test=2

    # the full layouts (VOCASET: 400 sequences, about 200 MB; BIWI: 240 sequences, about 60 MB)
    python -m training.make_sample_faces --corpus training/sample_data/LibriSpeech --output_dir DIR --format vocaset
    python -m training.make_sample_faces --corpus training/sample_data/LibriSpeech --output_dir DIR --format biwi

Outputs (in OUT): ``wav/``, ``vertices_npy/``, ``templates.pkl``, ``regions/lip_vertices.txt``
(``", "``-separated), ``regions/upper_face_vertices.txt`` (``","``-separated), ``mesh.obj``
(topology + neutral face), ``manifest.jsonl`` (one line per sequence: source utterance, text,
split, frames), ``info.json`` and ``README.md``; optionally ``preview.png``, ``preview.gif`` and
``mouth_params/`` (per-frame articulatory parameters).
"""

from __future__ import annotations

import argparse
import json
import pickle
import shlex
import shutil
import sys
import time
import warnings
from pathlib import Path

import numpy as np

from .faces.animate import FaceAnimator
from .faces.corpus import SAMPLE_RATE, CorpusError, load_corpus, read_audio
from .faces.datasets import (
    BIWI_SENTENCES,
    BIWI_SPLIT_SUBJECTS,
    VOCASET_SENTENCES,
    VOCASET_SUBJECTS,
    get_spec,
    plan_sequences,
)
from .faces.mesh import FaceShape, build_topology, make_template
from .faces.regions import LIP_FILE, UPPER_FACE_FILE, write_region
from .common.cli import kebab_case_aliases, rename_deprecated_flags
from .faces.visemes import PARAMS

FORMATS = ("vocaset", "biwi")
_OUTPUT_ITEMS = ("wav", "vertices_npy", "mouth_params", "regions", "templates.pkl", "mesh.obj", "manifest.jsonl",
                 "info.json", "README.md", "preview.png", "preview.gif")


def write_obj(path: Path, verts: np.ndarray, faces: np.ndarray) -> None:
    lines = ["# procedural face mesh (training.faces.mesh); metres, y up, z towards the viewer"]
    lines += [f"v {x:.6f} {y:.6f} {z:.6f}" for x, y, z in verts]
    lines += [f"f {a + 1} {b + 1} {c + 1}" for a, b, c in faces]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def _prepare_out(out: Path, overwrite: bool, clear: bool) -> None:
    """Refuse a non-empty ``out`` unless ``overwrite``; with ``clear``, remove a previous generation."""
    if out.exists() and any(out.iterdir()):
        ours = [p for p in out.iterdir() if p.name in _OUTPUT_ITEMS]
        others = [p for p in out.iterdir() if p.name not in _OUTPUT_ITEMS]
        if not overwrite:
            raise FileExistsError(f"{out} is not empty; pass --overwrite to replace a previous generation")
        if others:
            raise FileExistsError(f"{out} holds files this tool did not write ({others[0].name}); refusing to clear it")
        if clear:
            for p in ours:
                shutil.rmtree(p) if p.is_dir() else p.unlink()
    if clear:
        out.mkdir(parents=True, exist_ok=True)


def generate(
    corpus: str | Path,
    out: str | Path,
    fmt: str = "vocaset",
    seed: int = 0,
    max_sentences: int | dict | None = None,
    subjects: list[str] | None = None,
    preview: bool = True,
    gif: bool = False,
    save_params: bool = False,
    overwrite: bool = False,
    progress: bool = True,
    command: str | None = None,
) -> dict:
    """Generate the dataset; returns a summary (also written to ``OUT/info.json``)."""
    import soundfile as sf

    t0 = time.time()
    spec = get_spec(fmt)
    if subjects:
        unknown = sorted(set(subjects) - set(spec.subjects))
        if unknown:
            raise ValueError(f"unknown {fmt} subjects: {unknown}")
    out = Path(out)
    _prepare_out(out, overwrite, clear=False)
    utts = load_corpus(corpus)
    plan = plan_sequences(spec, utts, max_sentences=max_sentences, subjects=subjects)
    if not plan:
        raise CorpusError("nothing to generate (check --subjects / --max_sentences)")
    _prepare_out(out, overwrite, clear=True)
    (out / "wav").mkdir()
    (out / "vertices_npy").mkdir()
    if save_params:
        (out / "mouth_params").mkdir()

    anim = FaceAnimator(seed=seed, dataset=fmt, topo=build_topology(spec.grid_step))
    topo = anim.topo
    try:
        from tqdm.auto import tqdm
    except ImportError:  # pragma: no cover
        tqdm = None
    it = plan if (tqdm is None or not progress) else tqdm(plan, desc=f"{fmt} sequences", unit="seq")
    manifest = []
    sources = {}
    total_frames = 0
    mismatched = 0
    for a in it:
        u = a.utterance
        audio = read_audio(u.audio_path, SAMPLE_RATE)
        duration = len(audio) / SAMPLE_RATE
        if abs(duration - u.duration) > 0.05:
            mismatched += 1
        num_frames = int(round(duration * spec.fps))
        verts, mouth = anim.animate(a.slot.subject, a.name, u.phonemes, u.words, duration, num_frames, spec.fps)
        sf.write(str(out / "wav" / f"{a.name}.wav"), audio, SAMPLE_RATE, subtype="PCM_16")
        np.save(out / "vertices_npy" / f"{a.name}.npy", verts.reshape(num_frames, -1))
        if save_params:
            np.save(out / "mouth_params" / f"{a.name}.npy", mouth)
        total_frames += num_frames
        sources[a.name] = u
        manifest.append(
            {
                "name": a.name,
                "subject": a.slot.subject,
                "sentence": a.slot.sentence,
                "split": a.slot.role,
                "source_id": u.id,
                "source_split": a.pool,
                "speaker": u.speaker,
                "text": u.text,
                "duration": round(duration, 4),
                "frames": num_frames,
                "reused": a.reused,
            }
        )
    if mismatched:
        warnings.warn(f"{mismatched} utterances: alignment duration differs from the audio by > 50 ms")

    templates = {s: anim.template(s).astype(np.float64) for s in spec.subjects}
    with open(out / "templates.pkl", "wb") as f:
        pickle.dump(templates, f, protocol=2)
    write_region(out / LIP_FILE, topo.lip_region, sep=", ")
    write_region(out / UPPER_FACE_FILE, topo.upper_face_region, sep=",")
    write_obj(out / "mesh.obj", make_template(topo, FaceShape()), topo.faces)
    with open(out / "manifest.jsonl", "w", encoding="utf-8") as f:
        for m in manifest:
            f.write(json.dumps(m) + "\n")

    elapsed = time.time() - t0
    counts = {}
    for m in manifest:
        counts.setdefault(m["split"], {"subjects": set(), "sequences": 0, "frames": 0})
        counts[m["split"]]["subjects"].add(m["subject"])
        counts[m["split"]]["sequences"] += 1
        counts[m["split"]]["frames"] += m["frames"]
    counts = {k: {"subjects": sorted(v["subjects"]), "sequences": v["sequences"], "frames": v["frames"]}
              for k, v in counts.items()}
    info = {
        "format": fmt,
        "fps": spec.fps,
        "sample_rate": SAMPLE_RATE,
        "num_vertices": topo.num_vertices,
        "vertice_dim": topo.num_vertices * 3,
        "units": "metres",
        "seed": seed,
        "max_sentences": max_sentences,
        "corpus": str(corpus),
        "command": command,
        "sequences": len(manifest),
        "frames": total_frames,
        "seconds": round(total_frames / spec.fps, 2),
        "splits": counts,
        "sentence_ranges": _sentence_ranges(fmt),
        "templates": list(spec.subjects),
        "regions": {"lip": LIP_FILE, "upper_face": UPPER_FACE_FILE},
        "mouth_params": list(PARAMS) if save_params else None,
        "vertex_groups": {k: [int(v[0]), int(v[-1]) + 1] for k, v in topo.groups.items()},
    }
    (out / "info.json").write_text(json.dumps(info, indent=1) + "\n", encoding="utf-8")
    if preview or gif:
        from .faces.render import render_preview

        render_preview(out, anim, spec, manifest, sources, png=preview, gif=gif)
    (out / "README.md").write_text(_readme(info, manifest), encoding="utf-8")
    info["generation_seconds"] = round(elapsed, 2)
    info["total_seconds"] = round(time.time() - t0, 2)
    return info


def _sentence_ranges(fmt: str) -> dict:
    if fmt == "vocaset":
        return {r: {"subjects": VOCASET_SUBJECTS[r], "sentences": [VOCASET_SENTENCES[r][0], VOCASET_SENTENCES[r][-1]]}
                for r in VOCASET_SUBJECTS}
    return {r: {"subjects": BIWI_SPLIT_SUBJECTS, "sentences": [BIWI_SENTENCES[r][0], BIWI_SENTENCES[r][-1]]}
            for r in BIWI_SENTENCES}


def _readme(info: dict, manifest: list[dict]) -> str:
    fmt = info["format"]
    stem = "<subject>_sentenceNN" if fmt == "vocaset" else "<subject>_eNN"
    split_lines = []
    for role, r in info["sentence_ranges"].items():
        have = info["splits"].get(role, {"subjects": [], "sequences": 0, "frames": 0})
        split_lines.append(
            f"| {role} | {', '.join(r['subjects'])} | {r['sentences'][0]}-{r['sentences'][1]} | "
            f"{have['sequences']} | {have['frames']} |"
        )
    full = info["max_sentences"] is None
    ms = info["max_sentences"]
    limit = ", ".join(f"{k} {v}" for k, v in ms.items()) if isinstance(ms, dict) else str(ms)
    examples = (
        "e.g. `_sentence01` for training subjects and `_sentence21` for validation / test subjects (an exact subset "
        "of the full generation with the same corpus and seed; the full layout has 40 resp. 20)" if fmt == "vocaset"
        else "`_e01`, `_e33` and `_e37` for the train, val and test ranges (an exact subset of the full generation "
        "with the same corpus and seed; the full layout has 32, 4 and 4 per subject)"
    )
    subset = (
        "This is the full layout." if full else
        f"This is a reduced version: at most {limit} sentence(s) per subject, the first of each subject's "
        f"range, {examples}."
    )
    lines = [
        f"# Synthetic {fmt.upper()}-layout lip-sync sample",
        "",
        "Generated by `training/make_sample_faces.py` from a LibriSpeech-layout corpus with phoneme-timing "
        "sidecars: a procedural face mesh animated from espeak-ng phoneme timings through a viseme table with "
        "coarticulation, per-subject face shapes and speaking styles, blinks, brow raises, slight head motion and "
        "deterministic noise. Synthetic data for pipeline tests and small experiments; it is not VOCASET or BIWI.",
        "",
        "Command:",
        "",
        "```",
        str(info.get("command") or ""),
        "```",
        "",
        "## Layout",
        "",
        f"- `wav/{stem}.wav`: 16 kHz mono PCM, the corpus utterance (see `manifest.jsonl` for its id and text).",
        f"- `vertices_npy/{stem}.npy`: float32, frames x {info['vertice_dim']} ({info['num_vertices']} vertices x 3), "
        f"{info['fps']} fps, metres; frames = round(audio seconds x {info['fps']})"
        + (" (FaceFormer keeps every second frame: 30 fps)." if fmt == "vocaset" else "."),
        "- `templates.pkl`: dict subject -> neutral face (vertices x 3, float64); "
        "`pickle.load(f, encoding='latin1')`.",
        f"- `{LIP_FILE}`: lip vertex indices (LVE), separated by `, `.",
        f"- `{UPPER_FACE_FILE}`: forehead / brow / eye vertex indices (FDD), separated by `,`. "
        "Region loaders must accept both separators.",
        "- `mesh.obj`: triangles (1-based) on the neutral face, for rendering.",
        "- `manifest.jsonl`: per sequence: subject, sentence, split, source utterance id and split, text, frames.",
        "- `info.json`: vertex count, fps, counts, vertex groups, generator settings.",
        "",
        "## Splits",
        "",
        "| split | subjects | sentences | sequences here | frames here |",
        "|---|---|---|---|---|",
        *split_lines,
        "",
        subset,
        "",
        f"Totals: {info['sequences']} sequences, {info['frames']} frames ({info['seconds']} s), "
        f"{info['num_vertices']} vertices.",
        "",
    ]
    if fmt == "vocaset":
        lines += [
            "Training subjects take train-clean-100 utterances, validation subjects dev-clean, test subjects "
            "test-clean (so held-out sentences stay held out).",
            "",
        ]
    else:
        lines += [
            "BIWI's splits (Test-A: the six training subjects' sentences 37-40), naming and 25 fps, on a reduced-size "
            f"mesh: {info['num_vertices']} vertices instead of BIWI's 23,370 (a denser skin grid than the VOCASET "
            "layout's, so a mixture of the two has two mesh types). Train sentences take train-clean-100 utterances, "
            "val dev-clean, test test-clean.",
            "",
        ]
    return "\n".join(lines)


def _parse_limits(text: str) -> int | dict:
    if "=" not in text:
        return int(text)
    out = {}
    for part in text.split(","):
        role, _, n = part.partition("=")
        role = role.strip()
        if role not in ("train", "val", "test"):
            raise argparse.ArgumentTypeError(f"unknown split {role!r} in --max_sentences (train, val, test)")
        out[role] = int(n)
    return out


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m training.make_sample_faces", description=__doc__.split("\n\n")[0])
    p.add_argument("--corpus", required=True, help="LibriSpeech-layout folder with *.alignment.jsonl sidecars")
    p.add_argument("--output_dir", required=True, help="output folder")
    p.add_argument("--format", choices=FORMATS, default="vocaset")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--max_sentences", type=_parse_limits, default=None,
                   help="keep only the first N sentences of each subject's range (smaller sample): N, or per split "
                        "as train=N,val=N,test=N")
    p.add_argument("--subjects", default=None, help="comma-separated subset of subjects")
    p.add_argument("--no_preview", action="store_true", help="do not render preview.png")
    p.add_argument("--gif", action="store_true", help="also render preview.gif (one test sequence)")
    p.add_argument("--save_params", action="store_true", help="also write mouth_params/<name>.npy (T x 8)")
    p.add_argument("--overwrite", action="store_true", help="replace a previous generation in --output_dir")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


def main(argv: list[str] | None = None) -> int:
    p = build_parser()
    prog = "python -m training.make_sample_faces"
    # The package's one CLI dialect; the old spellings (--out, --max-sentences, ...) still work, with a warning.
    argv = rename_deprecated_flags(argv, {"--out": "--output_dir"}, prog=prog)
    argv = rename_deprecated_flags(argv, kebab_case_aliases(p), prog=prog)
    args = p.parse_args(argv)
    command = "python -m training.make_sample_faces " + " ".join(shlex.quote(a) for a in argv)
    try:
        info = generate(
            args.corpus,
            args.output_dir,
            fmt=args.format,
            seed=args.seed,
            max_sentences=args.max_sentences,
            subjects=args.subjects.split(",") if args.subjects else None,
            preview=not args.no_preview,
            gif=args.gif,
            save_params=args.save_params,
            overwrite=args.overwrite,
            progress=not args.quiet,
            command=command,
        )
    except (CorpusError, FileExistsError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(
        f"wrote {info['sequences']} sequences ({info['frames']} frames, {info['seconds']} s of audio), "
        f"{info['num_vertices']} vertices, to {args.output_dir} in {info['total_seconds']} s"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
