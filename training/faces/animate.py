"""Subjects (face templates + speaking styles) and whole-sequence animation.

A sequence is fully determined by ``(seed, dataset, subject, sequence name)`` and the phoneme
timings; nothing depends on the order in which sequences are generated.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from .mesh import FaceRig, FaceShape, FaceTopology, build_topology, make_template
from .visemes import ArticulationStyle, gaussian_smooth, mouth_parameters


def derive_seed(*parts) -> int:
    """A stable 63-bit seed from any printable parts (independent of Python's hash randomisation)."""
    h = hashlib.sha256("\x1f".join(str(p) for p in parts).encode("utf-8")).digest()
    return int.from_bytes(h[:8], "little") >> 1


@dataclass
class Subject:
    name: str
    shape: FaceShape
    style: ArticulationStyle
    blink_rate: float = 0.3  # blinks per second
    brow_activity: float = 0.35  # chance of a brow raise on a (long) word
    head_amp: float = 1.0  # scales the small rigid head motion
    noise_amp: float = 1.0

    @classmethod
    def create(cls, name: str, seed: int, dataset: str) -> "Subject":
        rng = np.random.default_rng(derive_seed("subject", seed, dataset, name))
        shape = FaceShape.sample(rng)
        style = ArticulationStyle(
            amplitude=float(rng.uniform(0.78, 1.22)),
            coart=float(rng.uniform(0.8, 1.3)),
            lead=float(rng.uniform(0.015, 0.05)),
            spread_bias=float(rng.uniform(-0.08, 0.12)),
            jaw_ratio=float(rng.uniform(0.85, 1.15)),
        )
        return cls(
            name=name,
            shape=shape,
            style=style,
            blink_rate=float(rng.uniform(0.18, 0.45)),
            brow_activity=float(rng.uniform(0.15, 0.55)),
            head_amp=float(rng.uniform(0.5, 1.2)),
            noise_amp=float(rng.uniform(0.8, 1.2)),
        )

    def describe(self) -> dict:
        return {
            "shape": {k: round(v, 4) for k, v in self.shape.as_dict().items()},
            "style": {k: round(getattr(self.style, k), 4) for k in ("amplitude", "coart", "lead", "spread_bias", "jaw_ratio")},
            "blink_rate": round(self.blink_rate, 4),
            "brow_activity": round(self.brow_activity, 4),
            "head_amp": round(self.head_amp, 4),
        }


def _smooth_noise(rng: np.random.Generator, n: int, dims: int, sigma_frames: float) -> np.ndarray:
    """Unit-variance smooth Gaussian noise, ``n x dims``."""
    pad = int(4 * sigma_frames) + 1
    x = rng.standard_normal((n + 2 * pad, dims))
    x = gaussian_smooth(x, sigma_frames)[pad : pad + n]
    std = x.std(axis=0, keepdims=True) if n > 1 else np.ones((1, dims))
    return x / np.maximum(std, 1e-8) * (1.0 if n > 8 else 0.5)


def _envelope(t: np.ndarray, start: float, rise: float, hold: float, fall: float) -> np.ndarray:
    """Smooth 0 -> 1 -> 0 envelope (cosine ramps)."""
    up = np.clip((t - start) / rise, 0.0, 1.0)
    down = np.clip((t - (start + rise + hold)) / fall, 0.0, 1.0)
    return 0.5 * (1 - np.cos(np.pi * up)) * 0.5 * (1 + np.cos(np.pi * down))


def upper_face_events(
    subject: Subject, words: Sequence[dict], num_frames: int, fps: float, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Blink (``T x 2``) and brow-raise (``T x 2``) curves in [0, 1] (image-left, image-right)."""
    t = np.arange(num_frames) / fps
    dur = num_frames / fps
    blink = np.zeros((num_frames, 2))
    # blinks: a Poisson process with a refractory period
    tb = float(rng.uniform(0.2, 1.5))
    while tb < dur:
        close = float(rng.uniform(0.06, 0.09))
        shut = float(rng.uniform(0.02, 0.06))
        reopen = float(rng.uniform(0.11, 0.17))
        depth = float(rng.uniform(0.85, 1.0))
        env = _envelope(t, tb, close, shut, reopen) * depth
        blink[:, 0] = np.maximum(blink[:, 0], env)
        blink[:, 1] = np.maximum(blink[:, 1], np.roll(env, int(rng.integers(0, 2))) * float(rng.uniform(0.93, 1.0)))
        tb += 0.6 + float(rng.exponential(1.0 / subject.blink_rate))
    # brow raises: on some longer words (and often on the first word)
    brow = np.zeros((num_frames, 2))
    for i, w in enumerate(words):
        start, end = float(w["start"]), float(w["end"])
        p = subject.brow_activity * (1.6 if i == 0 else 1.0) * (1.0 if end - start > 0.22 else 0.35)
        if rng.uniform() < min(p, 0.95):
            amp = float(rng.uniform(0.35, 1.0))
            env = _envelope(t, start - 0.12, 0.14, max(end - start - 0.05, 0.05), 0.3) * amp
            asym = float(rng.uniform(0.85, 1.0))
            brow[:, 0] = np.maximum(brow[:, 0], env * (asym if rng.uniform() < 0.5 else 1.0))
            brow[:, 1] = np.maximum(brow[:, 1], env * (1.0 if rng.uniform() < 0.5 else asym))
    return blink, brow


class FaceAnimator:
    """Turns alignment records into vertex sequences for a set of subjects."""

    def __init__(self, seed: int = 0, dataset: str = "vocaset", topo: FaceTopology | None = None):
        self.seed = int(seed)
        self.dataset = dataset
        self.topo = topo or build_topology()
        self._subjects: dict[str, Subject] = {}
        self._rigs: dict[str, FaceRig] = {}
        self._noise_basis = self._make_noise_basis()

    def _make_noise_basis(self, modes: int = 5) -> np.ndarray:
        """A few smooth spatial displacement fields (``modes x V x 3``, max norm 1), shared by all subjects."""
        rng = np.random.default_rng(derive_seed("noise-basis", self.seed, self.dataset))
        xy = self.topo.canonical
        basis = np.zeros((modes, self.topo.num_vertices, 3))
        for m in range(modes):
            for _ in range(3):
                c = np.array([rng.uniform(-0.06, 0.06), rng.uniform(-0.1, 0.09)])
                s = rng.uniform(0.02, 0.05)
                w = np.exp(-((xy - c) ** 2).sum(1) / (2 * s * s))
                basis[m] += w[:, None] * rng.standard_normal(3)[None, :]
            basis[m] /= np.linalg.norm(basis[m], axis=1).max() + 1e-12
        return basis

    def subject(self, name: str) -> Subject:
        if name not in self._subjects:
            self._subjects[name] = Subject.create(name, self.seed, self.dataset)
        return self._subjects[name]

    def rig(self, name: str) -> FaceRig:
        if name not in self._rigs:
            self._rigs[name] = FaceRig(self.topo, make_template(self.topo, self.subject(name).shape))
        return self._rigs[name]

    def template(self, name: str) -> np.ndarray:
        return self.rig(name).template

    def animate(
        self,
        subject_name: str,
        sequence_name: str,
        phonemes: Sequence[dict],
        words: Sequence[dict],
        duration: float,
        num_frames: int,
        fps: float,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Vertices (``T x V x 3`` float32, metres) and mouth parameters (``T x P`` float32)."""
        subj = self.subject(subject_name)
        rig = self.rig(subject_name)
        rng = np.random.default_rng(derive_seed("sequence", self.seed, self.dataset, subject_name, sequence_name))
        mouth = mouth_parameters(phonemes, duration, num_frames, fps, subj.style)
        # a little articulation variability from one utterance to the next
        mouth = mouth * (1.0 + 0.05 * _smooth_noise(rng, num_frames, mouth.shape[1], 0.25 * fps))
        blink, brow = upper_face_events(subj, words, num_frames, fps, rng)
        head = np.zeros((num_frames, 6))
        head[:, :3] = 0.0035 * subj.head_amp * _smooth_noise(rng, num_frames, 3, 0.45 * fps)
        head[:, 3:] = 0.0005 * subj.head_amp * _smooth_noise(rng, num_frames, 3, 0.6 * fps)
        head[:, 0] += 0.004 * subj.head_amp * brow.mean(1)  # small nod with emphasis
        verts = rig.deform(mouth, blink=blink, brow=brow, head=head)
        # deterministic noise: smooth low-amplitude field modes plus a faint per-vertex tremor
        coef = _smooth_noise(rng, num_frames, self._noise_basis.shape[0], 0.12 * fps)
        verts += 6e-5 * subj.noise_amp * np.einsum("tm,mvd->tvd", coef, self._noise_basis)
        jitter = rng.standard_normal(verts.shape)
        verts += 1.2e-5 * subj.noise_amp * gaussian_smooth(jitter, 0.02 * fps)
        return verts.astype(np.float32), mouth.astype(np.float32)

