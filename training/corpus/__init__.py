"""Synthetic speech corpus with near-homophones (espeak-ng or a piper neural voice), in the LibriSpeech (openslr) layout.

Readers for what :mod:`training.make_sample_corpus` writes:

* ``<speaker>-<chapter>.trans.txt``: ``ID TRANSCRIPT`` lines (:func:`read_transcripts`);
* ``<speaker>-<chapter>.alignment.jsonl``: one JSON object per utterance,
  ``{"id", "text", "duration", "words": [{"word", "start", "end"}], "phonemes": [{"phoneme", "start", "end"}]}``,
  times in seconds in the 16 kHz FLAC (:func:`read_alignments`).

Nothing here needs a synthesizer; only generation does (:mod:`training.corpus.voices`).
"""

from __future__ import annotations

import json
from pathlib import Path

__all__ = ["read_alignments", "read_transcripts", "find_flacs", "VoiceNotAvailable"]


class VoiceNotAvailable(RuntimeError):
    """A voice's synthesizer (library, model or data) cannot be loaded; the message says how to install it."""


def _files(path, pattern: str) -> list[Path]:
    p = Path(path)
    if p.is_file():
        return [p]
    if not p.exists():
        raise FileNotFoundError(p)
    return sorted(p.rglob(pattern))


def read_alignments(path) -> dict[str, dict]:
    """All alignment records under ``path`` (a chapter, split, ``LibriSpeech`` or corpus folder, or
    one ``.alignment.jsonl`` file), keyed by utterance id."""
    out: dict[str, dict] = {}
    for f in _files(path, "*.alignment.jsonl"):
        with open(f, encoding="utf-8") as fh:
            for line in fh:
                if line.strip():
                    rec = json.loads(line)
                    out[rec["id"]] = rec
    return out


def read_transcripts(path) -> dict[str, str]:
    """``{id: TRANSCRIPT}`` from every ``*.trans.txt`` under ``path``."""
    out: dict[str, str] = {}
    for f in _files(path, "*.trans.txt"):
        with open(f, encoding="utf-8") as fh:
            for line in fh:
                line = line.rstrip("\n")
                if line:
                    uid, _, text = line.partition(" ")
                    out[uid] = text
    return out


def find_flacs(path) -> dict[str, Path]:
    """``{id: path}`` of every ``*.flac`` under ``path``."""
    return {f.stem: f for f in _files(path, "*.flac")}
