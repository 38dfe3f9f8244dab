"""Phoneme -> viseme targets and coarticulation.

Phoneme names are espeak-ng ASCII mnemonics, as ``espeak-ng -x -q --sep=' ' "text"`` prints them
for English (``S 'i: p``, ``h @ l 'oU``, ``'e@ r-``, ``D I2 ;``, ``_:`` ...). Stress marks and
modifiers are stripped by :func:`normalize_phoneme`; unknown symbols fall back to a weak
schwa-like target, so no real-world transcription crashes the generator.

Each phoneme maps to targets for :data:`PARAMS` plus a *dominance* per parameter: how strongly
the phoneme imposes that parameter on its neighbourhood (Cohen & Massaro style). Parameters a
phoneme does not care about (lip rounding during /k/, for example) get a low dominance, so they
are filled in from the neighbours -- that is the coarticulation.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Sequence

import numpy as np

#: Mouth parameters, in order. Ranges: jaw/open/round/close/tuck/tongue_* in [0, 1], spread in [-1, 1].
PARAMS = ("jaw", "open", "spread", "round", "close", "tuck", "tongue_up", "tongue_out")
P_INDEX = {name: i for i, name in enumerate(PARAMS)}
NUM_PARAMS = len(PARAMS)

# Dominance used for a parameter the phoneme does not specify.
_FREE = 0.12
# Rest pose (silence).
REST = dict(jaw=0.02, open=0.0, spread=0.0, round=0.0, close=0.35, tuck=0.0, tongue_up=0.0, tongue_out=0.0)


@dataclass(frozen=True)
class Viseme:
    """Targets and dominances of one phoneme class (all vectors have :data:`NUM_PARAMS` entries)."""

    name: str
    target: tuple
    dominance: tuple


def _vis(name: str, strength: float = 1.0, **spec) -> Viseme:
    """Build a viseme. ``spec`` maps a parameter to a target value or ``(target, dominance)``."""
    target = [REST[p] for p in PARAMS]
    dom = [_FREE] * NUM_PARAMS
    # Speech movements leave the lips unsealed unless a phoneme asks for closure.
    target[P_INDEX["close"]] = 0.0
    for key, value in spec.items():
        if isinstance(value, tuple):
            t, d = value
        else:
            t, d = value, strength
        target[P_INDEX[key]] = float(t)
        dom[P_INDEX[key]] = float(d)
    return Viseme(name, tuple(target), tuple(dom))


# --- the table -------------------------------------------------------------------------------
# Vowels: jaw/open/spread/round at dominance ~1; close at moderate dominance 0 (keeps lips apart).
_V = dict(close=(0.0, 1.5), tuck=(0.0, 1.0), tongue_up=(0.0, 0.8), tongue_out=(0.0, 0.8))

# Per-parameter kernel widths (multiples of tau): lip rounding is anticipated far ahead, closures
# and tongue gestures are local.
TAU_SCALE = dict(jaw=1.0, open=0.9, spread=1.2, round=1.6, close=0.55, tuck=0.6, tongue_up=0.6, tongue_out=0.6)


def _vowel(name: str, jaw: float, open_: float, spread: float, round_: float = 0.0, strength: float = 1.0) -> Viseme:
    return _vis(name, strength, jaw=jaw, open=open_, spread=spread, round=round_, **_V)


VISEMES: dict[str, Viseme] = {}


def _add(keys: Iterable[str], vis: Viseme) -> None:
    for k in keys:
        VISEMES[k] = vis


# Monophthongs (espeak-ng en mnemonics).
_add(["i:"], _vowel("i:", jaw=0.10, open_=0.16, spread=0.95, strength=1.3))  # fleece: tense, wide spread
_add(["I", "I2", "I#"], _vowel("I", jaw=0.28, open_=0.34, spread=0.30))  # kit: lax, more open, less spread
_add(["i"], _vowel("i", jaw=0.16, open_=0.22, spread=0.65))  # happY
_add(["E"], _vowel("E", jaw=0.38, open_=0.42, spread=0.45))
_add(["a"], _vowel("a", jaw=0.62, open_=0.62, spread=0.40))  # trap
_add(["aa"], _vowel("aa", jaw=0.68, open_=0.62, spread=0.15))  # bath
_add(["A:", "A"], _vowel("A:", jaw=0.78, open_=0.68, spread=0.0))  # palm
_add(["0"], _vowel("0", jaw=0.62, open_=0.55, spread=-0.25, round_=0.40))  # lot
_add(["O:", "O"], _vowel("O:", jaw=0.48, open_=0.40, spread=-0.55, round_=0.75))  # thought
_add(["V"], _vowel("V", jaw=0.48, open_=0.46, spread=0.10))  # strut
_add(["U"], _vowel("U", jaw=0.22, open_=0.22, spread=-0.45, round_=0.55))  # foot
_add(["u:", "u"], _vowel("u:", jaw=0.12, open_=0.10, spread=-0.95, round_=1.0, strength=1.3))  # goose
_add(["3:"], _vowel("3:", jaw=0.30, open_=0.28, spread=-0.15, round_=0.30))  # nurse
_add(["3"], _vowel("3", jaw=0.26, open_=0.25, spread=-0.10, round_=0.22, strength=0.6))  # lettER
_add(["@", "@2", "@5", "a#", "@#"], _vowel("@", jaw=0.26, open_=0.26, spread=0.0, strength=0.5))  # schwa
_add(["e"], _vowel("e", jaw=0.32, open_=0.36, spread=0.50))

# Diphthongs: (first part, second part); the segment is split 55 / 45.
DIPHTHONGS: dict[str, tuple[str, str]] = {
    "eI": ("E", "i"),
    "aI": ("a", "I"),
    "aU": ("a", "U"),
    "OI": ("O:", "I"),
    "oU": ("@", "u:"),
    "e@": ("E", "@"),
    "i@": ("i", "@"),
    "i@3": ("i", "3"),
    "U@": ("U", "@"),
    "A@": ("A:", "@"),
    "O@": ("O:", "@"),
    "o@": ("O:", "@"),
    "aI@": ("a", "@"),
    "aU@": ("a", "@"),
    "@L": ("@", "l"),
    "@U": ("@", "U"),
}

# Consonants.
_add(["p", "b", "m"], _vis("pbm", close=(1.0, 5.0), open=(0.0, 1.5), jaw=(0.12, 0.7), tuck=(0.0, 1.5),
                           tongue_up=(0.0, 0.4), tongue_out=(0.0, 1.0)))
_add(["f", "v"], _vis("fv", tuck=(1.0, 4.0), close=(0.0, 2.0), open=(0.10, 0.8), jaw=(0.14, 0.7),
                      spread=(0.10, 0.5), tongue_out=(0.0, 1.0)))
_add(["T", "D"], _vis("TD", tongue_out=(1.0, 3.0), tongue_up=(0.0, 1.0), jaw=(0.18, 0.8), open=(0.28, 1.0),
                      close=(0.0, 2.0), tuck=(0.0, 1.5)))
# alveolars need a high jaw (the tongue tip reaches the ridge): strong jaw dominance
_add(["t", "d", "n", "t#", "d#", "n-"], _vis("tdn", tongue_up=(1.0, 2.0), tongue_out=(0.0, 1.0), jaw=(0.14, 1.6),
                                              open=(0.20, 1.4), close=(0.0, 2.0), tuck=(0.0, 1.5)))
_add(["l", "l-", "L"], _vis("l", tongue_up=(1.0, 1.5), tongue_out=(0.0, 0.8), jaw=(0.26, 0.7), open=(0.30, 0.8),
                            close=(0.0, 1.5), tuck=(0.0, 1.0)))
_add(["s", "z"], _vis("sz", jaw=(0.06, 1.8), open=(0.12, 1.4), spread=(0.45, 0.7), close=(0.0, 2.0),
                      tuck=(0.0, 1.5), tongue_up=(0.5, 0.6), tongue_out=(0.0, 1.0)))
_add(["S", "Z", "tS", "dZ"], _vis("SZ", round=(0.60, 1.6), spread=(-0.55, 1.2), open=(0.22, 1.0), jaw=(0.10, 1.0),
                                  close=(0.0, 2.0), tuck=(0.0, 1.5), tongue_up=(0.6, 0.6), tongue_out=(0.0, 1.0)))
_add(["k", "g", "N", "x", "c", "J"], _vis("kg", jaw=(0.24, 0.5), open=(0.24, 0.5), close=(0.0, 1.2),
                                          tuck=(0.0, 1.0), tongue_up=(0.0, 0.8), tongue_out=(0.0, 0.8)))
_add(["h"], _vis("h", close=(0.0, 0.6), tuck=(0.0, 0.4)))  # takes the following vowel's shape
_add(["r", "r-", "R", "*"], _vis("r", round=(0.45, 1.1), spread=(-0.35, 0.9), open=(0.20, 0.8), jaw=(0.18, 0.6),
                                 close=(0.0, 1.5), tuck=(0.0, 1.0), tongue_up=(0.3, 0.4), tongue_out=(0.0, 0.8)))
_add(["w", "W"], _vis("w", round=(1.0, 2.5), spread=(-0.95, 2.0), open=(0.08, 1.2), jaw=(0.10, 0.8),
                      close=(0.0, 1.5), tuck=(0.0, 1.0)))
_add(["j"], _vis("j", spread=(0.60, 1.0), open=(0.15, 0.8), jaw=(0.10, 0.8), close=(0.0, 1.2), tuck=(0.0, 1.0)))
_add(["?"], _vis("?", close=(0.0, 0.5)))  # glottal stop

SILENCE = Viseme("_", tuple(REST[p] for p in PARAMS), tuple([0.9] * NUM_PARAMS))

# Symbols that carry no articulation of their own (modifiers, syllable marks, word boundaries).
_IGNORED = {";", "-", "#", "|", "||", "", "'", ",", "%", "=", "!"}
_STRESS = "',%=!"


def normalize_phoneme(symbol: str) -> str:
    """Canonical key for an espeak-ng mnemonic: strips stress marks and unknown suffixes.

    Returns ``"_"`` for pauses, ``""`` for modifier-only symbols, otherwise a key of
    :data:`VISEMES` or :data:`DIPHTHONGS` (or ``"@"`` when nothing matches).
    """
    s = symbol.strip()
    if not s:
        return ""
    if s.startswith("_") or s.lower() in {"sil", "sp", "spn", "pau", "<sil>"}:
        return "_"
    s = s.strip(_STRESS)
    if s in _IGNORED:
        return ""
    # Longest known prefix wins ("i@3" before "i@" before "i").
    for n in range(len(s), 0, -1):
        head = s[:n]
        if head in DIPHTHONGS or head in VISEMES:
            return head
    return "@"


def lookup(symbol: str) -> list[tuple[Viseme, float]]:
    """Viseme(s) for one phoneme, as ``[(viseme, fraction_of_segment), ...]`` (empty to skip)."""
    key = normalize_phoneme(symbol)
    if key == "":
        return []
    if key == "_":
        return [(SILENCE, 1.0)]
    if key in DIPHTHONGS:
        a, b = DIPHTHONGS[key]
        return [(VISEMES[a], 0.55), (VISEMES[b], 0.45)]
    return [(VISEMES[key], 1.0)]


@dataclass
class Segment:
    start: float
    end: float
    viseme: Viseme


def segments_from_phonemes(phonemes: Sequence[dict], duration: float) -> list[Segment]:
    """Turn alignment records (``{"phoneme", "start", "end"}``) into viseme segments.

    Gaps in the timeline and the time before the first / after the last phoneme become silence.
    """
    segs: list[Segment] = []
    t = 0.0
    items = sorted(phonemes, key=lambda p: (float(p["start"]), float(p["end"])))
    for ph in items:
        start, end = float(ph["start"]), float(ph["end"])
        if end <= start:
            continue
        if start - t > 0.04:
            segs.append(Segment(t, start, SILENCE))
        parts = lookup(str(ph["phoneme"]))
        s = start
        for vis, frac in parts:
            e = s + frac * (end - start)
            segs.append(Segment(s, e, vis))
            s = e
        t = max(t, end)
    if duration - t > 0.04:
        segs.append(Segment(t, duration, SILENCE))
    if not segs:
        segs.append(Segment(0.0, max(duration, 1e-3), SILENCE))
    return segs


@dataclass
class ArticulationStyle:
    """How a speaker articulates (drawn per subject in :mod:`training.faces.animate`)."""

    amplitude: float = 1.0  # scales jaw / open / spread / round excursions
    coart: float = 1.0  # scales the coarticulation time constant (larger = smoother, lazier)
    lead: float = 0.03  # seconds the visible gesture anticipates the sound
    spread_bias: float = 0.0  # a slight habitual smile (+) or pout (-)
    jaw_ratio: float = 1.0  # how much of the opening comes from the jaw rather than the lips


def mouth_parameters(
    phonemes: Sequence[dict],
    duration: float,
    num_frames: int,
    fps: float,
    style: ArticulationStyle | None = None,
    base_tau: float = 0.055,
) -> np.ndarray:
    """Per-frame mouth parameters (``num_frames x NUM_PARAMS`` float64) from phoneme timings.

    Each segment exerts a dominance ``alpha * exp(-(max(|t - c| - 0.2 d, 0) / tau)^2)`` (flat over
    the central 40% of the segment of length ``d``, Gaussian tails of width ``tau``); parameters are the
    dominance-weighted mean of targets, plus a faint pull towards the rest pose, then lightly
    smoothed. Frame ``k`` is sampled at ``k / fps``.
    """
    style = style or ArticulationStyle()
    segs = segments_from_phonemes(phonemes, duration)
    t = np.arange(num_frames, dtype=np.float64) / fps + style.lead
    starts = np.array([s.start for s in segs])
    ends = np.array([s.end for s in segs])
    centers = 0.5 * (starts + ends)
    half = 0.5 * (ends - starts)
    targets = np.array([s.viseme.target for s in segs], dtype=np.float64)  # S x P
    alphas = np.array([s.viseme.dominance for s in segs], dtype=np.float64)  # S x P
    # Short segments are reached less completely: a weak duration dependence of dominance.
    alphas = alphas * np.clip(0.6 + 4.0 * (ends - starts), 0.6, 1.2)[:, None]
    tau = base_tau * style.coart
    dist = np.abs(t[:, None] - centers[None, :]) - 0.4 * half[None, :]  # T x S
    dist = np.maximum(dist, 0.0)
    taus = tau * np.array([TAU_SCALE[p] for p in PARAMS])
    kernel = np.exp(-((dist[:, :, None] / taus[None, None, :]) ** 2))  # T x S x P
    dom = kernel * alphas[None, :, :]  # T x S x P
    rest = np.array([REST[p] for p in PARAMS])
    eps = 0.02
    num = np.einsum("tsp,sp->tp", dom, targets) + eps * rest
    den = dom.sum(axis=1) + eps
    params = num / den
    # Speaker style.
    amp = np.ones(NUM_PARAMS)
    for name in ("jaw", "open", "spread", "round"):
        amp[P_INDEX[name]] = style.amplitude
    params = rest + (params - rest) * amp
    params[:, P_INDEX["spread"]] += style.spread_bias
    j, o = P_INDEX["jaw"], P_INDEX["open"]
    params[:, j] *= style.jaw_ratio
    params[:, o] *= 2.0 - style.jaw_ratio
    # Light smoothing (about 12 ms) so the curves have no kinks at segment joins.
    params = gaussian_smooth(params, sigma=0.012 * fps)
    params[:, P_INDEX["spread"]] = np.clip(params[:, P_INDEX["spread"]], -1.2, 1.2)
    others = [i for i in range(NUM_PARAMS) if i != P_INDEX["spread"]]
    params[:, others] = np.clip(params[:, others], 0.0, 1.2)
    return params


def gaussian_smooth(x: np.ndarray, sigma: float, axis: int = 0) -> np.ndarray:
    """Gaussian smoothing along ``axis`` with edge padding (``sigma`` in samples)."""
    if sigma <= 0.25 or x.shape[axis] < 2:
        return x.copy()
    radius = int(np.ceil(3 * sigma))
    k = np.exp(-0.5 * (np.arange(-radius, radius + 1) / sigma) ** 2)
    k /= k.sum()
    xm = np.moveaxis(x, axis, 0)
    pad = np.concatenate([np.repeat(xm[:1], radius, 0), xm, np.repeat(xm[-1:], radius, 0)], 0)
    out = np.zeros_like(xm, dtype=np.float64)
    for i, w in enumerate(k):
        out += w * pad[i : i + xm.shape[0]]
    return np.moveaxis(out, 0, axis)
