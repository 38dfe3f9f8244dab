"""Read a LibriSpeech-layout corpus with phoneme-timing sidecars.

Layout (openslr)::

    LibriSpeech/<split>/<speaker>/<chapter>/<speaker>-<chapter>-<utt:04d>.flac
    LibriSpeech/<split>/<speaker>/<chapter>/<speaker>-<chapter>.trans.txt
    LibriSpeech/<split>/<speaker>/<chapter>/<speaker>-<chapter>.alignment.jsonl   (sidecar)

Each sidecar line is one utterance::

    {"id": "...", "text": "...", "duration": 2.41,
     "words": [{"word": "SHEEP", "start": 0.31, "end": 0.62}, ...],
     "phonemes": [{"phoneme": "S", "start": 0.31, "end": 0.40}, ...]}

with times in seconds and espeak-ng ASCII phoneme mnemonics.
"""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

SAMPLE_RATE = 16000


class CorpusError(RuntimeError):
    """The corpus is missing, malformed, or has no phoneme timings."""


@dataclass
class Utterance:
    id: str
    split: str
    speaker: str
    chapter: str
    audio_path: Path
    text: str
    duration: float
    words: list = field(default_factory=list)
    phonemes: list = field(default_factory=list)

    @property
    def sort_key(self):
        return tuple(int(p) if p.isdigit() else p for p in self.id.split("-"))


def find_root(path: str | Path) -> Path:
    """Accept ``.../LibriSpeech``, its parent, or a single split folder."""
    p = Path(path).expanduser()
    if not p.is_dir():
        raise CorpusError(f"corpus folder {p} does not exist")
    if (p / "LibriSpeech").is_dir():
        return p / "LibriSpeech"
    return p


def _split_of(root: Path, sidecar: Path) -> str:
    rel = sidecar.relative_to(root).parts  # [split, speaker, chapter, file] or [speaker, chapter, file]
    if len(rel) >= 4:
        return rel[-4]
    return root.name


def _read_transcripts(chapter_dir: Path) -> dict[str, str]:
    out = {}
    for f in chapter_dir.glob("*.trans.txt"):
        for line in f.read_text(encoding="utf-8").splitlines():
            if line.strip():
                uid, _, text = line.strip().partition(" ")
                out[uid] = text
    return out


def _check_times(items, key: str, where: str) -> list:
    out = []
    for it in items or []:
        try:
            out.append({key: str(it[key]), "start": float(it["start"]), "end": float(it["end"])})
        except (KeyError, TypeError, ValueError) as e:
            raise CorpusError(f"{where}: malformed {key!r} entry {it!r} ({e})") from None
    return out


def load_corpus(path: str | Path, splits: list[str] | None = None) -> list[Utterance]:
    """All utterances that have phoneme timings, sorted by (split, speaker, chapter, utterance)."""
    root = find_root(path)
    sidecars = sorted(root.rglob("*.alignment.jsonl"))
    if not sidecars:
        n_flac = sum(1 for _ in root.rglob("*.flac"))
        raise CorpusError(
            f"no phoneme-timing sidecars (*.alignment.jsonl) under {root} ({n_flac} .flac files found). "
            "The face generator animates the mouth from phoneme timings: every chapter folder needs a "
            "<speaker>-<chapter>.alignment.jsonl next to its .trans.txt, one JSON object per utterance with "
            '"id", "duration", "words" and "phonemes" (start/end in seconds). Build the corpus with its '
            "alignment step, or write the sidecars with a forced aligner."
        )
    utts: list[Utterance] = []
    missing_audio = []
    for sc in sidecars:
        split = _split_of(root, sc)
        if splits is not None and split not in splits:
            continue
        trans = None
        for n, line in enumerate(sc.read_text(encoding="utf-8").splitlines(), 1):
            if not line.strip():
                continue
            where = f"{sc}:{n}"
            try:
                rec = json.loads(line)
            except json.JSONDecodeError as e:
                raise CorpusError(f"{where}: not valid JSON ({e})") from None
            if "id" not in rec or "phonemes" not in rec:
                raise CorpusError(f"{where}: a record needs 'id' and 'phonemes'")
            uid = str(rec["id"])
            audio = sc.parent / f"{uid}.flac"
            if not audio.exists():
                missing_audio.append(str(audio))
                continue
            text = rec.get("text")
            if text is None:
                trans = trans if trans is not None else _read_transcripts(sc.parent)
                text = trans.get(uid, "")
            phonemes = _check_times(rec["phonemes"], "phoneme", where)
            if not phonemes:
                raise CorpusError(f"{where}: utterance {uid} has no phonemes")
            words = _check_times(rec.get("words", []), "word", where)
            duration = float(rec.get("duration") or max(p["end"] for p in phonemes))
            parts = uid.split("-")
            speaker = parts[0] if len(parts) == 3 else sc.parent.parent.name
            chapter = parts[1] if len(parts) == 3 else sc.parent.name
            utts.append(Utterance(uid, split, speaker, chapter, audio, str(text), duration, words, phonemes))
    if missing_audio:
        raise CorpusError(
            f"{len(missing_audio)} alignment records have no audio file, e.g. {missing_audio[0]}"
        )
    if not utts:
        raise CorpusError(f"no utterances with phoneme timings under {root} (splits filter: {splits})")
    n_flac = sum(1 for _ in root.rglob("*.flac"))
    if n_flac > len(utts) and splits is None:
        warnings.warn(f"{n_flac - len(utts)} .flac files under {root} have no alignment record; they are ignored")
    utts.sort(key=lambda u: (u.split, _num(u.speaker), _num(u.chapter), u.sort_key))
    return utts


def _num(s: str):
    return (0, int(s), "") if s.isdigit() else (1, 0, s)


def read_audio(path: str | Path, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Mono float32 audio at ``sample_rate`` (resampled with soxr when needed)."""
    import soundfile as sf

    audio, sr = sf.read(str(path), dtype="float32", always_2d=True)
    audio = audio.mean(axis=1)
    if sr != sample_rate:
        import soxr

        audio = soxr.resample(audio, sr, sample_rate).astype(np.float32)
    return audio
