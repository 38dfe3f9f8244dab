"""VOCASET and BIWI processed layouts: subject names, splits, and the corpus -> sequence plan.

VOCASET (FaceFormer's processed layout)::

    OUT/wav/<subject>_sentenceNN.wav          16 kHz mono PCM
    OUT/vertices_npy/<subject>_sentenceNN.npy float32, T60 x V*3 (60 fps, metres)
    OUT/templates.pkl                         {subject: V x 3}, loadable with encoding="latin1"

    splits: 8 training subjects (sentences 1-40), 2 validation and 2 test subjects (sentences 21-40)

BIWI (processed)::

    OUT/wav/<subject>_eNN.wav, OUT/vertices_npy/<subject>_eNN.npy (T25 x V*3, 25 fps), OUT/templates.pkl

    splits (Test-A, seen subjects): F2 F3 F4 M3 M4 M5; train sentences 1-32, val 33-36, test 37-40

Corpus utterances are taken per role from the matching LibriSpeech split: train from
``train-clean-100``, validation from ``dev-clean``, test from ``test-clean``.
"""

from __future__ import annotations

import warnings
from collections import OrderedDict
from dataclasses import dataclass

from modeling_wav2sem.configuration_animation import ANIMATION_DATASETS

from .corpus import Utterance

# The splits as the registry states them (the one home of the datasets' facts).
_VOCASET, _BIWI = ANIMATION_DATASETS["vocaset"], ANIMATION_DATASETS["biwi"]
VOCASET_SUBJECTS = OrderedDict((split, list(_VOCASET.split_subjects[split])) for split in ("train", "val", "test"))
VOCASET_SENTENCES = {split: range(first, last + 1) for split, (first, last) in _VOCASET.split_sentences.items()}

BIWI_SUBJECTS = list(_BIWI.all_subjects)
BIWI_SPLIT_SUBJECTS = list(_BIWI.train_subjects)
BIWI_SENTENCES = {split: range(first, last + 1) for split, (first, last) in _BIWI.split_sentences.items()}

# Which LibriSpeech split feeds which role, most preferred first.
POOLS = {
    "train": ["train-clean-100", "train-clean-360", "train-other-500"],
    "val": ["dev-clean", "dev-other"],
    "test": ["test-clean", "test-other"],
}


@dataclass(frozen=True)
class Slot:
    subject: str
    sentence: int
    role: str  # train / val / test
    index: int  # position among this subject's sentences in this role (0-based)


@dataclass(frozen=True)
class Assignment:
    slot: Slot
    name: str  # file stem, e.g. FaceTalk_170728_03272_TA_sentence01
    utterance: Utterance
    pool: str  # the corpus split it came from
    reused: bool  # the utterance also serves another slot (corpus too small)


# The skin-grid spacing of each layout's procedural mesh (metres). BIWI's real mesh (23,370 vertices) is far larger
# than VOCASET's (5,023); the synthetic BIWI layout keeps that difference in kind with a denser, still small mesh
# (318 vs 270 vertices), so a mixture of the two has two mesh types.
GRID_STEPS = {"vocaset": 0.013, "biwi": 0.011}


@dataclass(frozen=True)
class LayoutSpec:
    name: str
    fps: int
    subjects: tuple  # every subject written to templates.pkl
    slots: tuple
    grid_step: float = GRID_STEPS["vocaset"]

    def sequence_name(self, subject: str, sentence: int) -> str:
        return ANIMATION_DATASETS[self.name].sequence_name(subject, sentence)

    def split_of(self, subject: str, sentence: int) -> str | None:
        for s in self.slots:
            if s.subject == subject and s.sentence == sentence:
                return s.role
        return None


def vocaset_spec() -> LayoutSpec:
    slots = []
    for role, subjects in VOCASET_SUBJECTS.items():
        for subj in subjects:
            for i, n in enumerate(VOCASET_SENTENCES[role]):
                slots.append(Slot(subj, n, role, i))
    subjects = tuple(s for v in VOCASET_SUBJECTS.values() for s in v)
    return LayoutSpec("vocaset", int(_VOCASET.capture_fps), subjects, tuple(slots), GRID_STEPS["vocaset"])


def biwi_spec() -> LayoutSpec:
    slots = []
    for subj in BIWI_SPLIT_SUBJECTS:
        for role, rng in BIWI_SENTENCES.items():
            for i, n in enumerate(rng):
                slots.append(Slot(subj, n, role, i))
    return LayoutSpec("biwi", int(_BIWI.capture_fps), tuple(BIWI_SUBJECTS), tuple(slots), GRID_STEPS["biwi"])


def get_spec(name: str) -> LayoutSpec:
    if name == "vocaset":
        return vocaset_spec()
    if name == "biwi":
        return biwi_spec()
    raise ValueError(f"unknown format {name!r} (vocaset or biwi)")


def _resolve_pool(role: str, available: list[str]) -> str | None:
    for name in POOLS[role]:
        if name in available:
            return name
    keys = {"train": ("train",), "val": ("dev", "val"), "test": ("test", "eval")}[role]
    for name in sorted(available):
        if any(k in name.lower() for k in keys):
            return name
    return None


def plan_sequences(
    spec: LayoutSpec,
    utterances: list[Utterance],
    max_sentences: int | dict | None = None,
    subjects: list[str] | None = None,
) -> list[Assignment]:
    """Map corpus utterances to the layout's ``(subject, sentence)`` slots.

    The mapping is computed for the full layout and then truncated to the first
    ``max_sentences`` slots per subject and role (an int, or a dict role -> int; roles missing
    from the dict are not truncated), so a small dataset is always a subset of the full one
    generated with the same corpus and seed.
    """
    if max_sentences is None or isinstance(max_sentences, dict):
        limits = dict(max_sentences or {})
    else:
        limits = {role: int(max_sentences) for role in ("train", "val", "test")}
    by_split: dict[str, list[Utterance]] = {}
    for u in utterances:
        by_split.setdefault(u.split, []).append(u)
    available = sorted(by_split)
    pools = {role: _resolve_pool(role, available) for role in ("train", "val", "test")}
    if pools["train"] is None:
        # a corpus with unconventional split names: use everything as the training pool
        pools["train"] = available[0]
        warnings.warn(f"no train-* split in the corpus ({available}); using {available[0]!r} for training slots")
    for role in ("val", "test"):
        if pools[role] is None:
            warnings.warn(f"no {POOLS[role][0]} split in the corpus; {role} slots reuse {pools['train']!r} utterances")
            pools[role] = pools["train"]

    result: dict[Slot, tuple[Utterance, str, bool]] = {}
    reused_count = 0
    # one allocation per corpus pool, over all the roles that draw from it (so no utterance is
    # used twice unless the pool is too small)
    for pool in sorted(set(pools.values())):
        pool_slots = [s for s in spec.slots if pools[s.role] == pool]
        if not pool_slots:
            continue
        utts = by_split[pool]
        speakers = sorted({u.speaker for u in utts}, key=lambda s: (not s.isdigit(), int(s) if s.isdigit() else 0, s))
        subj_order = list(OrderedDict.fromkeys((s.role, s.subject) for s in pool_slots))
        n_subj = len(subj_order)
        # speaker -> subjects: each subject gets its own voice(s) when there are enough speakers
        spk_subjects: dict[str, list[int]] = {}
        for k, spk in enumerate(speakers):
            if len(speakers) >= n_subj:
                spk_subjects[spk] = [k % n_subj]
            else:
                spk_subjects[spk] = [i for i in range(n_subj) if i % len(speakers) == k]
        dealt: list[list[Utterance]] = [[] for _ in range(n_subj)]
        for spk in speakers:
            targets = spk_subjects[spk]
            mine = [u for u in utts if u.speaker == spk]
            for j, u in enumerate(mine):
                dealt[targets[j % len(targets)]].append(u)
        need = [sum(1 for s in pool_slots if (s.role, s.subject) == key) for key in subj_order]
        leftovers = [u for i in range(n_subj) for u in dealt[i][need[i]:]]
        taken = [dealt[i][: need[i]] for i in range(n_subj)]
        for i in range(n_subj):
            while len(taken[i]) < need[i] and leftovers:
                taken[i].append(leftovers.pop(0))
        for i, key in enumerate(subj_order):
            own = taken[i]
            slots_i = [s for s in pool_slots if (s.role, s.subject) == key]
            for j, slot in enumerate(slots_i):
                if j < len(own):
                    result[slot] = (own[j], pool, False)
                else:
                    src = own if own else utts
                    result[slot] = (src[j % len(src)], pool, True)
                    reused_count += 1
    if reused_count:
        warnings.warn(
            f"the corpus is too small for the full {spec.name} layout: {reused_count} of {len(spec.slots)} "
            "sequences reuse an utterance already used by another sequence"
        )

    out = []
    for slot in spec.slots:
        if subjects is not None and slot.subject not in subjects:
            continue
        if slot.role in limits and slot.index >= limits[slot.role]:
            continue
        utt, pool, reused = result[slot]
        out.append(Assignment(slot, spec.sequence_name(slot.subject, slot.sentence), utt, pool, reused))
    return out
