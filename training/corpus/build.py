"""Build a synthetic LibriSpeech-layout corpus with one of the voices: plan, synthesize, align, write.

Determinism: every utterance draws its sentence candidates, its voice jitter, its padding and the
seed of the synthesizer's noise from its own random streams, keyed by ``(seed, split, index)``.
espeak-ng synthesizes every utterance in a fresh fork of a never-used synthesizer (see
:func:`training.corpus.espeak.synthesize_isolated`); piper's noise comes from that seed alone (see
:mod:`training.corpus.piper`).  An utterance takes the first candidate that
(1) no earlier utterance of the corpus has taken, (2) synthesizes and aligns cleanly and (3) lasts
as long as asked.  The output therefore depends on the arguments only, not on ``workers``.
"""

from __future__ import annotations

import dataclasses
import json
import random
import re
import shutil
import time
import zlib
from collections import Counter, deque
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np
import soundfile as sf
import soxr

from . import alignment as A
from .pairs import HELDOUT_PAIRS, TRAIN_PAIRS
from .text import Sentence, SentenceGenerator, transcript
from .voices import get_voice

SAMPLE_RATE = 16000
SPLITS = ("train-clean-100", "dev-clean", "test-clean")
SPLIT_KIND = {"train-clean-100": "train", "dev-clean": "eval", "test-clean": "eval"}
# chapter id = speaker id * 1000 + offset + chapter index
CHAPTER_OFFSET = {"train-clean-100": 0, "dev-clean": 700, "test-clean": 850}
CHAPTER_LIMIT = {"train-clean-100": 700, "dev-clean": 150, "test-clean": 150}

@dataclass(frozen=True)
class Planned:
    split: str
    index: int  # position in the split
    speaker: object  # a speaker of the voice's table (voices.EspeakSpeaker, voices.PiperSpeaker)
    chapter: int
    utt: int
    focus_word: str | None  # near-homophone word for a carrier sentence, None for a general one

    @property
    def id(self) -> str:
        return f"{self.speaker.id}-{self.chapter}-{self.utt:04d}"


def split_sizes(total: int, fractions: tuple[float, float, float]) -> dict[str, int]:
    s = sum(fractions)
    sizes = [int(round(total * f / s)) for f in fractions]
    sizes[0] = total - sizes[1] - sizes[2]
    return dict(zip(SPLITS, sizes))


def plan(seed: int, sizes: dict[str, int], speakers: list, chapter_size: int,
         pair_fraction: dict[str, float], heldout_fraction: float) -> Iterator[Planned]:
    """The utterances to make, in order: split, speaker, chapter, utterance."""
    train_words = sorted({w for p in TRAIN_PAIRS for w in p})
    heldout_words = sorted({w for p in HELDOUT_PAIRS for w in p})
    for split in SPLITS:
        n = sizes.get(split, 0)
        if n <= 0:
            continue
        rng = random.Random(f"{seed}/{split}/plan")
        per_speaker = [n // len(speakers) + (1 if k < n % len(speakers) else 0) for k in range(len(speakers))]
        # decide, per utterance, pair carrier (and which word) or general sentence
        n_pair = int(round(n * pair_fraction[SPLIT_KIND[split]]))
        is_pair = [True] * n_pair + [False] * (n - n_pair)
        rng.shuffle(is_pair)
        if SPLIT_KIND[split] == "train":
            cycles = [train_words]
            weights = [1.0]
        else:
            cycles = [heldout_words, train_words]
            weights = [heldout_fraction, 1 - heldout_fraction]
        decks = [[] for _ in cycles]

        def next_word() -> str:
            which = rng.choices(range(len(cycles)), weights=weights)[0]
            if not decks[which]:
                decks[which] = rng.sample(cycles[which], len(cycles[which]))
            return decks[which].pop()

        index = 0
        for speaker, count in zip(speakers, per_speaker):
            n_chapters = max(1, -(-count // chapter_size))
            if n_chapters > CHAPTER_LIMIT[split]:
                raise ValueError(f"{split}: {n_chapters} chapters per speaker; raise --chapter-size")
            for u in range(count):
                chapter = speaker.id * 1000 + CHAPTER_OFFSET[split] + u // chapter_size
                word = next_word() if is_pair[index] else None
                yield Planned(split, index, speaker, chapter, u % chapter_size, word)
                index += 1


# ------------------------------------------------------------------------------------------------
@dataclass
class Candidate:
    sentence: Sentence
    words: list[str]  # lowercase words as in the synthesized text
    starts: list[int]  # 1-based char offsets of the words in the synthesized text
    spoken: str  # the text given to the synthesizer
    settings: dict  # the voice's jitter around the speaker (voices.*.jitter)


class UtteranceStream:
    """The candidates of one planned utterance, in a fixed order."""

    def __init__(self, seed: int, item: Planned, gen: SentenceGenerator, max_words: int, voice):
        self.item = item
        self.voice = voice
        self.gen = gen
        self.max_words = max_words
        key = f"{seed}/{item.split}/{item.index}"
        self.text_rng = random.Random(key + "/text")
        self.voice_rng = random.Random(key + "/voice")
        self.pad_rng = random.Random(key + "/pad")
        self.rand_seed = zlib.crc32(key.encode())
        self.drawn = 0

    def next(self) -> Candidate:
        while True:
            self.drawn += 1
            if self.drawn > 10000:
                raise RuntimeError(f"no acceptable sentence for {self.item}")
            if self.item.focus_word is None:
                s = self.gen.general(self.text_rng)
            else:
                s = self.gen.pair_sentence(self.text_rng, self.item.focus_word)
            if not self.gen.acceptable(s, max_words=self.max_words):
                continue
            body = s.text.rstrip("?")
            spoken = body + ("?" if s.text.endswith("?") else ".")
            matches = list(re.finditer(r"[a-z']+", body))
            return Candidate(s, [m.group(0) for m in matches], [m.start() + 1 for m in matches], spoken,
                             self.voice.jitter(self.item.speaker, self.voice_rng))

    def submit(self, cand: Candidate):
        return self.voice.submit(cand.spoken, cand.words, self.item.speaker, cand.settings, self.rand_seed)


@dataclass
class Utterance:
    id: str
    split: str
    speaker: object
    chapter: int
    text: str  # uppercase transcript
    audio: np.ndarray  # int16 at 16 kHz
    words: list[dict]
    phonemes: list[dict]
    kind: str

    @property
    def duration(self) -> float:
        return len(self.audio) / SAMPLE_RATE

    def record(self) -> dict:
        return {"id": self.id, "text": self.text, "duration": round(self.duration, 4),
                "words": self.words, "phonemes": self.phonemes}


class Rejected(Exception):
    pass


def finish(stream: UtteranceStream, cand: Candidate, result, min_speech: float, max_speech: float) -> Utterance:
    """Align, check, level, resample and pad one synthesized candidate (raises :class:`Rejected`)."""
    if isinstance(result, ValueError) or len(result.audio) == 0:
        raise Rejected(str(result) if isinstance(result, ValueError) else "no audio")
    sr = result.sample_rate
    audio = result.audio
    try:
        segs = stream.voice.align(result, cand.starts)
    except ValueError as exc:
        raise Rejected(str(exc)) from exc
    speech = (segs[-1].end - segs[0].start) / sr
    if not (min_speech <= speech <= max_speech):
        raise Rejected(f"speech lasts {speech:.2f} s")
    spans = A.word_intervals(segs, len(cand.words))
    if any(b <= a for a, b in spans) or any(s.end < s.start for s in segs):
        raise Rejected("empty word or negative phoneme")

    # level, resample, pad
    x = audio.astype(np.float32) / 32768.0 if audio.dtype == np.int16 else audio.astype(np.float32)
    peak = float(np.max(np.abs(x))) or 1.0
    x *= stream.item.speaker.peak / peak
    y = soxr.resample(x, sr, SAMPLE_RATE)
    lead = round(stream.pad_rng.uniform(0.08, 0.25), 3)
    trail = round(stream.pad_rng.uniform(0.12, 0.30), 3)
    y = np.concatenate([np.zeros(int(round(lead * SAMPLE_RATE)), np.float32), y,
                        np.zeros(int(round(trail * SAMPLE_RATE)), np.float32)])
    y16 = np.clip(np.round(y * 32768.0), -32768, 32767).astype(np.int16)
    offset = int(round(lead * SAMPLE_RATE)) / SAMPLE_RATE

    def t(sample: int) -> float:
        return round(offset + sample / sr, 3)

    words = [{"word": w.upper(), "start": t(a), "end": t(b)} for w, (a, b) in zip(cand.words, spans)]
    phonemes = [{"phoneme": s.phoneme, "start": t(s.start), "end": t(s.end)} for s in segs]
    return Utterance(stream.item.id, stream.item.split, stream.item.speaker, stream.item.chapter,
                     transcript(cand.sentence.text), y16, words, phonemes, cand.sentence.kind)


# ------------------------------------------------------------------------------------------------
@dataclass
class BuildConfig:
    out: Path
    utterances: int = 364
    seed: int = 0
    speakers: int = 24
    chapter_size: int = 8
    split_fractions: tuple[float, float, float] = (5.0, 1.0, 1.0)
    train_pair_fraction: float = 0.45
    eval_pair_fraction: float = 0.6
    heldout_fraction: float = 0.7
    min_speech: float = 1.0
    max_speech: float = 2.5
    max_words: int = 14
    voice: str = "espeak"  # a name of voices.VOICES
    workers: int = 1
    overwrite: bool = False


class CorpusWriter:
    """Streams utterances to the openslr layout; one open chapter per speaker at most."""

    def __init__(self, root: Path):
        self.root = root
        self.minutes: Counter = Counter()
        self.count: Counter = Counter()

    def chapter_dir(self, u: Utterance) -> Path:
        return self.root / u.split / str(u.speaker.id) / str(u.chapter)

    def write(self, u: Utterance) -> int:
        d = self.chapter_dir(u)
        d.mkdir(parents=True, exist_ok=True)
        path = d / f"{u.id}.flac"
        sf.write(path, u.audio, SAMPLE_RATE, format="FLAC", subtype="PCM_16")
        stem = f"{u.speaker.id}-{u.chapter}"
        with open(d / f"{stem}.trans.txt", "a", encoding="utf-8", newline="\n") as f:
            f.write(f"{u.id} {u.text}\n")
        with open(d / f"{stem}.alignment.jsonl", "a", encoding="utf-8", newline="\n") as f:
            f.write(json.dumps(u.record(), ensure_ascii=True) + "\n")
        self.minutes[(u.speaker.id, u.split)] += u.duration / 60
        self.count[u.split] += 1
        return path.stat().st_size


def write_pair_lists(out: Path) -> None:
    for name, pairs in (("near_homophones_train.tsv", TRAIN_PAIRS), ("near_homophones_heldout.tsv", HELDOUT_PAIRS)):
        with open(out / name, "w", encoding="utf-8", newline="\n") as f:
            f.write("word_a\tword_b\n")
            for a, b in pairs:
                f.write(f"{a}\t{b}\n")


def write_speakers(root: Path, voice, speakers: list, writer: CorpusWriter) -> None:
    lines = [*voice.speakers_header, ";ID  |SEX| SUBSET           |MINUTES| NAME"]
    for sp in speakers:
        for split in SPLITS:
            m = writer.minutes.get((sp.id, split))
            if m:
                lines.append(f"{sp.id:<5}| {sp.sex} | {split:<17}| {m:5.2f} | {sp.describe()}")
    (root / "SPEAKERS.TXT").write_text("\n".join(lines) + "\n", encoding="utf-8")


def build(cfg: BuildConfig, progress: bool = True) -> dict:
    """Generate the corpus under ``cfg.out / "LibriSpeech"``; returns a summary dict."""
    voice = get_voice(cfg.voice, workers=cfg.workers, speech_seconds=(cfg.min_speech, cfg.max_speech))  # raises VoiceNotAvailable with an install hint
    root = Path(cfg.out) / "LibriSpeech"
    existing = [root / s for s in SPLITS if (root / s).exists()]
    if existing:
        if not cfg.overwrite:
            raise FileExistsError(f"{existing[0]} exists; pass overwrite=True (--overwrite) to replace it")
        for d in existing:
            shutil.rmtree(d)
    root.mkdir(parents=True, exist_ok=True)
    write_pair_lists(Path(cfg.out))

    speakers = voice.speakers(cfg.speakers)
    sizes = split_sizes(cfg.utterances, cfg.split_fractions)
    items = plan(cfg.seed, sizes, speakers, cfg.chapter_size,
                 {"train": cfg.train_pair_fraction, "eval": cfg.eval_pair_fraction}, cfg.heldout_fraction)
    gens = {"train": SentenceGenerator.for_split("train"), "eval": SentenceGenerator.for_split("eval")}
    writer = CorpusWriter(root)
    used: set[str] = set()
    stats = Counter()
    kinds = Counter()
    total_bytes = 0
    total_seconds = 0.0

    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=cfg.utterances, unit="utt", desc="synthesizing", dynamic_ncols=True)

    def propose(stream: UtteranceStream) -> tuple[Candidate, PendingSynth]:
        while True:
            cand = stream.next()
            key = transcript(cand.sentence.text)
            if key not in used:
                return cand, stream.submit(cand)
            stats["duplicate"] += 1

    t0 = time.perf_counter()
    pending: deque[tuple[UtteranceStream, Candidate, PendingSynth]] = deque()
    it = iter(items)
    exhausted = False
    workers = max(1, cfg.workers)
    while True:
        while not exhausted and len(pending) < workers:
            try:
                item = next(it)
            except StopIteration:
                exhausted = True
                break
            stream = UtteranceStream(cfg.seed, item, gens[SPLIT_KIND[item.split]], cfg.max_words, voice)
            pending.append((stream, *propose(stream)))
        if not pending:
            break
        stream, cand, job = pending.popleft()
        while True:
            key = transcript(cand.sentence.text)
            if key in used:  # taken by an earlier utterance since it was proposed
                stats["duplicate"] += 1
            else:
                try:
                    utt = finish(stream, cand, job.result(), cfg.min_speech, cfg.max_speech)
                    break
                except Rejected as exc:
                    stats["rejected: " + str(exc).split(" ")[0]] += 1
            job = None
            cand, job = propose(stream)
        used.add(utt.text)
        kinds[utt.kind.split(":")[0]] += 1
        total_bytes += writer.write(utt)
        total_seconds += utt.duration
        if bar is not None:
            bar.update(1)
    elapsed = time.perf_counter() - t0
    if bar is not None:
        bar.close()
    write_speakers(root, voice, speakers, writer)
    summary = {
        "seed": cfg.seed,
        "utterances": dict(writer.count),
        "hours": round(total_seconds / 3600, 4),
        "flac_megabytes": round(total_bytes / 1e6, 3),
        "speakers": len(speakers),
        "voices": sorted({sp.voice for sp in speakers}) if cfg.voice == "espeak" else [sp.describe() for sp in speakers],
        "sentence_kinds": dict(kinds),
        "candidates_skipped": dict(stats),
        "seconds": round(elapsed, 2),
        "utterances_per_second": round(sum(writer.count.values()) / max(elapsed, 1e-9), 2),
        **voice.info(),
    }
    return summary


def config_dict(cfg: BuildConfig) -> dict:
    """The configuration as JSON values.  The default voice is left out (the summary's ``espeak_ng`` or ``piper``
    entry names the engine anyway), so that the committed sample's ``corpus_info.json`` keeps its bytes."""
    d = dataclasses.asdict(cfg)
    d["out"] = str(d["out"])
    d["split_fractions"] = list(d["split_fractions"])
    if d["voice"] == BuildConfig.voice:
        del d["voice"]
    return d
