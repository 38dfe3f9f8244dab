"""Several datasets in one run (UniTalker's mixture): `DatasetMixture`, `DatasetGroupedBatchSampler` (batches never mix
two datasets, per-dataset oversampling, seeded order) and the clip limit of `AnimationDataset` (`max_seconds`), on the
embedded VOCASET- and BIWI-layout samples."""

from collections import Counter

import numpy as np
import pytest
import soundfile as sf
import torch

from training.animation.data import AnimationDataset, DatasetMixture, collate_animation, default_animation_dir
from training.common.sampling import DatasetGroupedBatchSampler

VOCASET, BIWI = default_animation_dir("vocaset"), default_animation_dir("biwi")


@pytest.fixture(scope="module")
def mixture():
    return DatasetMixture({
        "vocaset": AnimationDataset(VOCASET, "vocaset", "train"),
        "biwi": AnimationDataset(BIWI, "biwi", "train"),
    })


def test_mixture_numbers_items_through_its_datasets(mixture):
    assert len(mixture) == 8 + 6
    assert [mixture[i]["dataset"] for i in (0, 7, 8, 13)] == ["vocaset", "vocaset", "biwi", "biwi"]
    assert mixture[8]["labels"].shape[1] == 318 * 3 and mixture[0]["labels"].shape[1] == 270 * 3  # two mesh types
    assert mixture[8]["subject_index"] == ["F2", "F3", "F4", "M3", "M4", "M5"].index(mixture[8]["subject"])
    lengths = mixture.group_lengths()
    assert list(lengths) == ["vocaset", "biwi"] and [len(v) for v in lengths.values()] == [8, 6]
    with pytest.raises(ValueError, match="mixes meshes"):
        collate_animation([mixture[0], mixture[8]])


def test_batches_never_mix_two_datasets_and_repeats_oversample(mixture):
    sampler = DatasetGroupedBatchSampler(mixture.group_lengths(), 4, {"biwi": 3}, seed=0)
    batches = list(sampler)
    assert len(batches) == len(sampler) == 2 + 5  # ceil(8 / 4) + ceil(18 / 4)
    for batch in batches:
        assert len({i >= 8 for i in batch}) == 1  # items 0-7 are VOCASET's, 8-13 BIWI's
    counts = Counter(i for batch in batches for i in batch)
    assert all(counts[i] == 1 for i in range(8)) and all(counts[i] == 3 for i in range(8, 14))
    assert len(batches[-1]) == 2 and all(len(b) == 4 for b in batches[:-1])  # the short one last
    collate_animation([mixture[i] for i in batches[0]])  # a real batch collates


def test_sampler_order_is_fixed_by_seed_and_epoch(mixture):
    def order(seed, epoch):
        sampler = DatasetGroupedBatchSampler(mixture.group_lengths(), 2, seed=seed)
        sampler.set_epoch(epoch)
        return list(sampler)

    assert order(0, 0) == order(0, 0)
    assert order(0, 0) != order(0, 1) and order(0, 0) != order(1, 0)
    # both datasets' batches are interleaved, not one dataset after the other
    kinds = [batch[0] >= 8 for batch in order(0, 0)]
    assert kinds != sorted(kinds) and kinds != sorted(kinds, reverse=True)
    with pytest.raises(ValueError, match="not in the mixture"):
        DatasetGroupedBatchSampler(mixture.group_lengths(), 2, {"multiface": 2})
    with pytest.raises(ValueError, match=">= 1"):
        DatasetGroupedBatchSampler(mixture.group_lengths(), 2, {"biwi": 0})


def test_clip_limit_is_an_option_and_counts_what_it_cuts():
    whole = AnimationDataset(BIWI, "biwi", "train")
    cut = AnimationDataset(BIWI, "biwi", "train", max_seconds=1.5)
    assert whole.clipped == [] and whole.max_seconds is None
    durations = {s.name: sf.info(str(s.wav)).duration for s in whole.sequences}
    assert sorted(cut.clipped) == sorted(name for name, d in durations.items() if d > 1.5)
    for index in range(len(cut)):
        item, full = cut[index], whole[index]
        assert len(item["input_values"]) <= 24000 and len(item["labels"]) <= int(1.5 * 25)
        np.testing.assert_array_equal(item["labels"], full["labels"][: len(item["labels"])])
    assert cut.lengths() == [min(n, 37) for n in whole.lengths()]
    assert max(len(whole[i]["input_values"]) for i in range(len(whole))) > 24000  # nothing cut without the option
    with pytest.raises(ValueError, match="max_seconds must be > 0"):
        AnimationDataset(BIWI, "biwi", "train", max_seconds=0)


def test_sampler_feeds_a_dataloader(mixture):
    sampler = DatasetGroupedBatchSampler(mixture.group_lengths(), 3, seed=1)
    loader = torch.utils.data.DataLoader(mixture, batch_sampler=sampler, collate_fn=collate_animation)
    seen = [set(batch["datasets"]) for batch in loader]
    assert all(len(kinds) == 1 for kinds in seen) and {"vocaset", "biwi"} == set().union(*seen)
