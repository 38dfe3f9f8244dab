"""The paper's near-homophone decoupling measurement, as a tool.

    python -m training.analyze_homophones --encoder PLAIN --fused FUSED --corpus DIR --pairs FILE --output_dir DIR

For each occurrence of a word of a near-homophone pair (sheep/ship) in the corpus, the encoder's frame features over
the word's time span (from the corpus's word timings) are mean-pooled into one vector. Each vector is L2-normalised,
and the distance of a pair is the mean L2 distance over all (occurrence of a, occurrence of b) combinations. The paper
reports 0.0397 for Wav2Vec 2.0 and 0.0701 with Wav2Sem (x1.77). The same statistic over random pairs of other words
gives the scale. A t-SNE of the word vectors, plain vs fused, is saved as PNG.

Both encoders run utterance by utterance (no padding), on audio prepared by their own feature extractors.
"""

import argparse
import json
import random
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
from tqdm.auto import tqdm
from transformers import AutoFeatureExtractor, AutoModel

import modeling_wav2sem  # noqa: F401  (registers the Auto classes)
from modeling_wav2sem.modeling_speech_backbone import (
    is_whisper,
    raw_audio_feature_extractor,
    speech_encoder_of,
    speech_frames,
)
from .common.cli import rename_deprecated_flags
from .corpus import find_flacs, read_alignments

FRAME_RATE = 50.0  # encoder frames per second: hop 320 samples at 16 kHz


def frame_span(start: float, end: float, num_frames: int, frame_rate: float = FRAME_RATE) -> tuple[int, int]:
    """Encoder frames `[first, last)` covering the time span `[start, end)` seconds; frame k covers
    `[k / rate, (k + 1) / rate)`. At least one frame, clipped to the `num_frames` the encoder produced."""
    if end <= start:
        raise ValueError(f"Empty word span [{start}, {end}).")
    first = min(int(np.floor(start * frame_rate + 1e-9)), num_frames - 1)
    last = min(max(int(np.ceil(end * frame_rate - 1e-9)), first + 1), num_frames)
    return first, last


def pool_words(frames: np.ndarray, spans: list[tuple[float, float]], frame_rate: float = FRAME_RATE) -> np.ndarray:
    """Mean-pool `(N, C)` frame features over each word span (seconds) -> `(len(spans), C)`."""
    pooled = []
    for start, end in spans:
        first, last = frame_span(start, end, len(frames), frame_rate)
        pooled.append(frames[first:last].mean(axis=0))
    return np.stack(pooled) if pooled else np.zeros((0, frames.shape[1]), dtype=frames.dtype)


def l2_normalize(vectors: np.ndarray) -> np.ndarray:
    return vectors / np.maximum(np.linalg.norm(vectors, axis=-1, keepdims=True), 1e-12)


def pair_distance(first: np.ndarray, second: np.ndarray) -> float:
    """Mean L2 distance between the L2-normalised vectors of two words, over all occurrence combinations."""
    a, b = l2_normalize(np.asarray(first, dtype=np.float64)), l2_normalize(np.asarray(second, dtype=np.float64))
    return float(np.linalg.norm(a[:, None, :] - b[None, :, :], axis=-1).mean())


def read_pairs(path: str | Path) -> list[tuple[str, str]]:
    """`word_a<TAB>word_b` lines (a header line `word_a word_b` is skipped), case-insensitive."""
    pairs = []
    for line in Path(path).read_text().splitlines():
        fields = line.strip().lower().split()
        if len(fields) != 2 or fields == ["word_a", "word_b"]:
            continue
        pairs.append((fields[0], fields[1]))
    if not pairs:
        raise ValueError(f"No word pairs in {path} (expected lines 'word_a<TAB>word_b').")
    return pairs


def read_word_alignments(corpus_dir: str | Path, splits: list[str] | None) -> list[dict]:
    """Alignment records (`id, text, duration, words: [{word, start, end}]`) with their FLAC path (`audio_path`),
    from the `<speaker>-<chapter>.alignment.jsonl` sidecars of an openslr-layout corpus (optionally some splits)."""
    root = Path(corpus_dir)
    if (root / "LibriSpeech").is_dir():
        root = root / "LibriSpeech"
    folders = [root / s for s in splits] if splits else [root]
    records = []
    for folder in folders:
        if not folder.is_dir():
            raise FileNotFoundError(f"No corpus folder {folder}.")
        flacs = find_flacs(folder)
        for uid, record in sorted(read_alignments(folder).items()):
            if uid not in flacs:
                raise FileNotFoundError(f"Word timings for {uid} but no {uid}.flac under {folder}.")
            records.append({**record, "audio_path": str(flacs[uid])})
    if not records:
        raise FileNotFoundError(f"No *.alignment.jsonl word timings under {folders}.")
    return records


class FrameEncoder:
    """Frame features `(N, C)` of one utterance from a saved encoder: a plain backbone (wav2vec2 family or Whisper),
    a Wav2SemFusedEncoder, or an animation model, whose audio encoder is used with the FC1 it was trained with."""

    def __init__(self, name_or_path: str):
        model = AutoModel.from_pretrained(name_or_path)
        self.model = speech_encoder_of(getattr(model, "audio_encoder", model)).eval()
        try:
            self.extractor = AutoFeatureExtractor.from_pretrained(name_or_path)
        except (OSError, ValueError):
            self.extractor = None
        if is_whisper(self.model.config):  # Whisper's log-mel features are computed from the raw audio
            self.extractor = raw_audio_feature_extractor()
        self.name = name_or_path

    @torch.inference_mode()
    def __call__(self, audio: np.ndarray) -> np.ndarray:
        if self.extractor is not None:
            values = self.extractor(audio, sampling_rate=16000, return_tensors="pt").input_values
        else:
            values = torch.from_numpy((audio - audio.mean()) / np.sqrt(audio.var() + 1e-7)).float()[None]
        return speech_frames(self.model, values)[0].float().numpy()


def collect_word_vectors(encoder: FrameEncoder, records: list[dict], words: set[str]) -> dict[str, np.ndarray]:
    """Pooled vectors of every occurrence of `words` in `records`: word -> `(occurrences, C)`."""
    found = defaultdict(list)
    for record in tqdm(records, desc=f"encoding ({Path(encoder.name).name})", leave=False):
        wanted = [w for w in record["words"] if w["word"].lower() in words]
        if not wanted:
            continue
        audio, rate = sf.read(record["audio_path"], dtype="float32")
        if rate != 16000:
            raise ValueError(f"{record['audio_path']} is {rate} Hz; the corpus must be 16 kHz.")
        vectors = pool_words(encoder(audio), [(w["start"], w["end"]) for w in wanted])
        for w, vector in zip(wanted, vectors):
            found[w["word"].lower()].append(vector)
    return {w: np.stack(v) for w, v in found.items()}


def random_reference_pairs(records, exclude: set[str], count: int, seed: int) -> list[tuple[str, str]]:
    """`count` random pairs of distinct other words (occurring in the records), for the reference scale."""
    vocabulary = sorted({w["word"].lower() for r in records for w in r["words"]} - exclude)
    vocabulary = [w for w in vocabulary if len(w) > 2]
    rng = random.Random(seed)
    return [tuple(rng.sample(vocabulary, 2)) for _ in range(count)] if len(vocabulary) >= 2 else []


def distance_table(vectors: dict[str, np.ndarray], pairs) -> dict[str, float]:
    return {f"{a}/{b}": pair_distance(vectors[a], vectors[b]) for a, b in pairs if a in vectors and b in vectors}


def analyze(plain: FrameEncoder, fused: FrameEncoder, records, pairs, num_random: int = 50, seed: int = 0) -> dict:
    """Per-pair and overall distances for both encoders, their ratio, and the random-pair reference."""
    pair_words = {w for pair in pairs for w in pair}
    reference = random_reference_pairs(records, pair_words, num_random, seed)
    words = pair_words | {w for pair in reference for w in pair}
    result = {"normalisation": "word vectors L2-normalised; distance = mean L2 over all occurrence combinations"}
    vectors = {}
    for label, encoder in (("plain", plain), ("fused", fused)):
        vectors[label] = collect_word_vectors(encoder, records, words)
        result[label] = {
            "pairs": distance_table(vectors[label], pairs),
            "random_pairs": distance_table(vectors[label], reference),
        }
    measured = [p for p in result["plain"]["pairs"] if p in result["fused"]["pairs"]]
    if not measured:
        raise ValueError("None of the pairs has both words in the corpus's word timings.")
    missing = [f"{a}/{b}" for a, b in pairs if f"{a}/{b}" not in measured]
    summary = {}
    for label in ("plain", "fused"):
        summary[f"{label}_pair_distance"] = float(np.mean([result[label]["pairs"][p] for p in measured]))
        randoms = list(result[label]["random_pairs"].values())
        summary[f"{label}_random_distance"] = float(np.mean(randoms)) if randoms else None
    summary["ratio_fused_over_plain"] = summary["fused_pair_distance"] / summary["plain_pair_distance"]
    summary["paper_ratio"] = 0.0701 / 0.0397
    result["per_pair_ratio"] = {p: result["fused"]["pairs"][p] / result["plain"]["pairs"][p] for p in measured}
    result["occurrences"] = {w: int(len(v)) for w, v in sorted(vectors["plain"].items()) if w in pair_words}
    result["missing_pairs"] = missing
    result["summary"] = summary
    result["_vectors"] = vectors
    return result


def plot_tsne(vectors: dict[str, dict[str, np.ndarray]], pairs, path: Path, seed: int = 0):
    """t-SNE of the near-homophone word vectors, coloured by word; plain and fused side by side."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.manifold import TSNE

    words = [w for pair in pairs for w in pair if all(w in vectors[k] for k in vectors)]
    fig, axes = plt.subplots(1, 2, figsize=(13, 6))
    colours = plt.get_cmap("tab20")
    for ax, (label, table) in zip(axes, vectors.items()):
        stacked = np.concatenate([l2_normalize(table[w]) for w in words])
        labels = np.concatenate([[i] * len(table[w]) for i, w in enumerate(words)])
        perplexity = max(2.0, min(30.0, (len(stacked) - 1) / 3))
        points = TSNE(n_components=2, perplexity=perplexity, random_state=seed, init="pca").fit_transform(stacked)
        for i, word in enumerate(words):
            chosen = points[labels == i]
            ax.scatter(chosen[:, 0], chosen[:, 1], s=18, color=colours(i % 20), marker="o" if i % 2 == 0 else "^")
            centre = chosen.mean(axis=0)
            ax.annotate(word, centre, fontsize=8, weight="bold", color=colours(i % 20))
        ax.set_title(f"{label} encoder: near-homophone word features (t-SNE)")
        ax.set_xticks([]), ax.set_yticks([])
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--encoder", required=True, help="plain speech encoder (folder or Hub id)")
    parser.add_argument("--fused", required=True, help="Wav2SemFusedEncoder of the same backbone (folder or Hub id)")
    parser.add_argument("--corpus", required=True, help="openslr-layout corpus with *.alignment.jsonl word timings")
    parser.add_argument("--pairs", required=True, help="TSV of near-homophone pairs: word_a<TAB>word_b")
    parser.add_argument("--splits", nargs="*", default=None, help="corpus splits to use (default: all)")
    parser.add_argument("--output_dir", required=True, help="output folder for results.json and tsne.png")
    parser.add_argument("--num_random_pairs", type=int, default=50)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(rename_deprecated_flags(argv, {"--out": "--output_dir"}, prog=parser.prog))

    out = Path(args.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    pairs = read_pairs(args.pairs)
    records = read_word_alignments(args.corpus, args.splits)
    result = analyze(FrameEncoder(args.encoder), FrameEncoder(args.fused), records, pairs, args.num_random_pairs, args.seed)
    vectors = result.pop("_vectors")
    measured = [tuple(p.split("/")) for p in result["per_pair_ratio"]]
    plot_tsne(vectors, measured, out / "tsne.png", seed=args.seed)
    result["inputs"] = {"encoder": args.encoder, "fused": args.fused, "corpus": args.corpus, "pairs": args.pairs, "splits": args.splits}
    (out / "results.json").write_text(json.dumps(result, indent=2))

    s = result["summary"]
    print(f"{'pair':<20}{'plain':>10}{'fused':>10}{'ratio':>8}")
    for pair, ratio in result["per_pair_ratio"].items():
        print(f"{pair:<20}{result['plain']['pairs'][pair]:>10.4f}{result['fused']['pairs'][pair]:>10.4f}{ratio:>8.2f}")
    print(f"{'all pairs':<20}{s['plain_pair_distance']:>10.4f}{s['fused_pair_distance']:>10.4f}{s['ratio_fused_over_plain']:>8.2f}")
    if s["plain_random_distance"] is not None:
        print(f"{'random word pairs':<20}{s['plain_random_distance']:>10.4f}{s['fused_random_distance']:>10.4f}"
              f"{s['fused_random_distance'] / s['plain_random_distance']:>8.2f}")
    print(f"paper: 0.0397 -> 0.0701 (x{s['paper_ratio']:.2f}); missing pairs: {result['missing_pairs'] or 'none'}")
    print(f"wrote {out / 'results.json'} and {out / 'tsne.png'}")


if __name__ == "__main__":
    sys.exit(main())
