"""Word and phoneme intervals from espeak-ng's synthesis events, checked against the audio.

What the events give, and what this module corrects (all verified on spectrograms of the
synthesized audio; see ``training/sample_data/README.md``):

* A phoneme event marks the start of that phoneme, with three exceptions that espeak-ng's
  ``Generate()`` produces on purpose:

  1. a phoneme's *pre-pause* is emitted before its event.  For a stop (``p t k b d g tS dZ``) that
     pause is the closure, so the silent closure ends up in the previous phoneme.
     :func:`refine` moves the stop's start back over the silent frames just before it;
  2. for a vowel after a nasal, liquid or glide (``m n N l r w j``), the event is emitted after the
     vowel's onset transition, 20-100 ms late.  :func:`refine` moves the boundary to where the
     short-time energy crosses halfway between the consonant's and the vowel's levels;
  3. a syllable-final liquid (``l`` in "bell", ``r`` in rhotic accents) is rendered inside the
     vowel's offglide and its own event comes at the very end, leaving it 0-12 ms long.
     :func:`refine` gives it the last 35 % of the vowel+liquid span (at most 90 ms);
  4. the pause marker after a phrase-final phoneme comes before the phoneme's sound has died
     away (by up to ~60 ms).  :func:`refine` extends such a phoneme over the non-silent frames
     that follow it.

* Word events are not reliable boundaries (espeak-ng sometimes emits a word's event at the start
  of the previous word's last phoneme), but each phoneme event carries the character position of
  its word, which is what :func:`assign_words` uses.  espeak-ng pronounces some word sequences as
  one dictionary unit ("in the", "there was", "did not"); the second word then has no phoneme
  events of its own.  :func:`assign_words` splits the unit's phonemes between the words by
  matching each word's own pronunciation (espeak-ng's ``TextToPhonemes`` of the word alone).

* Pause phonemes (``_``, ``_:``, ``_!`` ...) are dropped; they end the previous phoneme.  Silence
  between words is therefore a gap between intervals, not an interval.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = [
    "Segment",
    "raw_segments",
    "assign_words",
    "refine",
    "word_intervals",
    "is_vowel",
    "is_stop",
    "is_sonorant",
    "phoneme_base",
    "phoneme_edit_distance",
    "split_phonemes",
    "speech_levels",
]

_VOWEL_FIRST = set("aeiouAEIOUV03@")
_STOPS = {"p", "b", "t", "d", "k", "g", "tS", "dZ", "?"}
_SONORANT_FIRST = set("mnNlrwjR")
_LIQUID_FIRST = set("lrR")


def phoneme_base(ph: str) -> str:
    """Mnemonic without espeak-ng's variant marks (``t#`` -> ``t``, ``@2`` -> ``@``, ``r-`` -> ``r``)."""
    return ph.rstrip("#-/[;2345:").rstrip("#") or ph


def is_vowel(ph: str) -> bool:
    return ph[:1] in _VOWEL_FIRST


def is_stop(ph: str) -> bool:
    return phoneme_base(ph) in _STOPS


def is_sonorant(ph: str) -> bool:
    return ph[:1] in _SONORANT_FIRST and not is_vowel(ph)


def is_liquid(ph: str) -> bool:
    return ph[:1] in _LIQUID_FIRST and not is_vowel(ph)


@dataclass
class Segment:
    phoneme: str
    start: int  # samples at the synthesizer's rate
    end: int
    word: int  # index of the word in the sentence (-1 before assignment)
    position: int  # espeak-ng's text_position (1-based character offset of the word)


def raw_segments(events, n_samples: int) -> list[Segment]:
    """Phoneme segments from the events: each phoneme runs to the next phoneme or pause event."""
    marks = [e for e in events if e.type == "phoneme"]
    segs = []
    for i, e in enumerate(marks):
        if e.phoneme.startswith("_"):
            continue
        end = marks[i + 1].sample if i + 1 < len(marks) else n_samples
        end = min(max(end, e.sample), n_samples)
        segs.append(Segment(e.phoneme, min(e.sample, n_samples), end, -1, e.text_position))
    return segs


def _strip_stress(ph: str) -> str:
    return ph.lstrip("',%=")


def _sub_cost(a: str, b: str) -> float:
    if a == b:
        return 0.0
    if phoneme_base(a) == phoneme_base(b) or (is_vowel(a) and is_vowel(b)):
        return 0.5
    return 1.0


def phoneme_edit_distance(a: list[str], b: list[str]) -> float:
    """Edit distance between phoneme sequences; substituting a variant of the same phoneme or one vowel for another
    costs 0.5."""
    d = np.zeros((len(a) + 1, len(b) + 1))
    d[:, 0] = np.arange(len(a) + 1)
    d[0, :] = np.arange(len(b) + 1)
    for i in range(1, len(a) + 1):
        for j in range(1, len(b) + 1):
            d[i, j] = min(d[i - 1, j] + 1, d[i, j - 1] + 1, d[i - 1, j - 1] + _sub_cost(a[i - 1], b[j - 1]))
    return float(d[len(a), len(b)])


def split_phonemes(phones: list[str], prons: list[list[str]]) -> list[int] | None:
    """Cut ``phones`` into ``len(prons)`` non-empty runs matching ``prons`` best; returns run sizes."""
    k, n = len(prons), len(phones)
    if n < k:
        return None
    best: tuple[float, list[int]] | None = None

    def rec(i: int, j: int, sizes: list[int], cost: float):
        nonlocal best
        if best is not None and cost >= best[0]:
            return
        if j == k - 1:
            total = cost + phoneme_edit_distance(phones[i:], prons[j])
            if best is None or total < best[0]:
                best = (total, sizes + [n - i])
            return
        for size in range(1, n - i - (k - 1 - j) + 1):
            rec(i + size, j + 1, sizes + [size], cost + phoneme_edit_distance(phones[i:i + size], prons[j]))

    rec(0, 0, [], 0.0)
    return best[1] if best else None


def assign_words(segs: list[Segment], word_starts: list[int], prons: list[list[str]] | None = None) -> list[Segment]:
    """Give every segment the index of its word; split multi-word units (see module doc).

    ``word_starts`` are the 1-based character offsets of the words in the synthesized text.
    ``prons`` are the words' stand-alone pronunciations (lists of mnemonics) used to split units.
    Raises ``ValueError`` if some word cannot get at least one phoneme.
    """
    if not segs:
        raise ValueError("no phoneme events")
    starts = np.asarray(word_starts)
    last = 0
    for s in segs:
        w = int(np.searchsorted(starts, s.position, side="right")) - 1
        w = min(max(w, last), len(word_starts) - 1)
        s.word = last = w
    n_words = len(word_starts)
    counts = np.bincount([s.word for s in segs], minlength=n_words)
    if (counts > 0).all():
        return segs
    # Group each phoneme-less word with the nearest preceding word that has phonemes
    # (or the following one, at the start of the sentence) and split that word's phonemes.
    groups: list[list[int]] = []
    for w in range(n_words):
        if counts[w] > 0 or not groups:
            groups.append([w])
        else:
            groups[-1].append(w)
    out: list[Segment] = []
    for g in groups:
        owner = [w for w in g if counts[w] > 0]
        if not owner:
            raise ValueError(f"words {g} have no phonemes")
        mine = [s for s in segs if s.word == owner[0]]
        if len(g) == 1:
            out.extend(mine)
            continue
        if prons is None:
            raise ValueError("a multi-word unit needs the words' pronunciations to be split")
        sizes = split_phonemes([s.phoneme for s in mine], [[_strip_stress(p) for p in prons[w]] for w in g])
        if sizes is None:
            raise ValueError(f"cannot split {len(mine)} phonemes among words {g}")
        i = 0
        for w, size in zip(g, sizes):
            for s in mine[i:i + size]:
                s.word = w
            i += size
        out.extend(mine)
    return out


def _frame_db(audio: np.ndarray, sr: int, win_s: float = 0.005, hop_s: float = 0.001):
    x = audio.astype(np.float64)
    hop = max(1, int(round(sr * hop_s)))
    win = max(hop, int(round(sr * win_s)))
    c = np.concatenate([[0.0], np.cumsum(x * x)])
    starts = np.arange(0, max(1, len(x) - win + 1), hop)
    energy = (c[starts + win] - c[starts]) / win
    return 10 * np.log10(energy + 1e-3), hop, win


def speech_levels(audio: np.ndarray, sr: int, *, silence_db: float = -35.0) -> tuple[np.ndarray, int, int, float]:
    """Short-time levels of int16-scaled ``audio`` (dB of 5 ms windows every 1 ms) and the silence threshold:
    ``silence_db`` below the 99th-percentile frame, but never under an amplitude of 30.  Returns
    ``(db, hop, win, threshold)``."""
    db, hop, win = _frame_db(audio, sr)
    peak = float(np.percentile(db, 99)) if len(db) else 0.0
    return db, hop, win, max(peak + silence_db, 10 * np.log10(30.0 ** 2))


def refine(segs: list[Segment], audio: np.ndarray, sr: int, *, silence_db: float = -35.0) -> list[Segment]:
    """Apply the four corrections of the module doc, in place; returns ``segs``."""
    if not segs:
        return segs
    db, hop, win, silent_thr = speech_levels(audio, sr, silence_db=silence_db)
    ms = sr / 1000.0

    def frame_at(sample: int) -> int:
        return min(max(int(sample // hop), 0), len(db) - 1)

    def level(a: int, b: int) -> float:
        fa, fb = frame_at(a), frame_at(max(a + 1, b - win))
        return float(np.median(db[fa:fb + 1]))

    # 4. before a pause (and at the end), the phoneme's sound outlasts its pause marker: extend it
    #    over the non-silent frames that follow.
    for i, seg in enumerate(segs):
        nxt = segs[i + 1].start if i + 1 < len(segs) else len(audio)
        if seg.end >= nxt:
            continue
        t = seg.end
        while t + hop <= nxt and db[frame_at(t)] >= silent_thr:
            t += hop
        seg.end = min(max(seg.end, t), nxt)

    for i in range(1, len(segs)):
        prev, cur = segs[i - 1], segs[i]
        if prev.end != cur.start:
            continue  # a pause lies between them
        # 1. stop closure: silent frames right before the stop's event belong to the stop.
        if is_stop(cur.phoneme):
            limit = prev.start + max(int(0.3 * (prev.end - prev.start)), int(20 * ms))
            t = cur.start
            while t - hop >= limit:
                f = frame_at(t - win)  # window ending at t
                if db[f] >= silent_thr:
                    break
                t -= hop
            if t < cur.start:
                prev.end = cur.start = t
        # 3. syllable-final liquid squeezed into the vowel's offglide.
        elif is_liquid(cur.phoneme) and is_vowel(prev.phoneme) and cur.end - cur.start < 25 * ms:
            span = cur.end - prev.start
            new_len = int(min(0.35 * span, 90 * ms))
            if new_len > cur.end - cur.start:
                prev.end = cur.start = cur.end - new_len
        # 2. vowel onset after a sonorant: energy midpoint.
        elif is_vowel(cur.phoneme) and is_sonorant(prev.phoneme):
            lo = prev.start + max(int(0.3 * (cur.start - prev.start)), int(10 * ms))
            if lo >= cur.start:
                continue
            v_end = cur.start + int(min(50 * ms, 0.5 * (cur.end - cur.start)))
            lc, lv = level(prev.start, lo), level(cur.start, max(v_end, cur.start + win + hop))
            if lv - lc < 4.0:
                continue
            thr = 0.5 * (lc + lv)
            f_lo, f_hi = frame_at(lo), frame_at(cur.start)
            run = max(1, int(round(5 * ms / hop)))
            for f in range(f_lo, f_hi):
                if (db[f:f + run] >= thr).all():
                    t = min(f * hop + win // 2, cur.start)
                    if t > prev.start:
                        prev.end = cur.start = t
                    break
    return segs


def word_intervals(segs: list[Segment], n_words: int) -> list[tuple[int, int]]:
    spans = []
    for w in range(n_words):
        mine = [s for s in segs if s.word == w]
        spans.append((mine[0].start, mine[-1].end))
    return spans
