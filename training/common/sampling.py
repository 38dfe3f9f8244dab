"""Length-grouped, seeded batching that resumes exactly and shards cleanly under `accelerator.prepare`."""

import math

import numpy as np
import torch


class LengthGroupedBatchSampler(torch.utils.data.Sampler):
    """Batches of similar length, in an order fixed by (seed, epoch): shuffle, cut into groups of 50 batches, sort each
    group by length, cut into batches, shuffle the batches. Call `set_epoch` before iterating.

    The one incomplete batch, if any, comes last: sharded over processes by `accelerator.prepare`, a round of batches
    that ends in a short batch is skipped unless it is the final round, so a short batch in the middle would drop a
    whole round of utterances from every epoch.
    """

    def __init__(self, lengths, batch_size: int, seed: int = 0, group_batches: int = 50, shuffle: bool = True):
        self.lengths = np.asarray(lengths)
        self.batch_size, self.seed, self.group, self.shuffle = batch_size, seed, group_batches, shuffle
        self.epoch = 0

    def set_epoch(self, epoch: int):
        self.epoch = epoch

    def __len__(self) -> int:
        return math.ceil(len(self.lengths) / self.batch_size)

    def __iter__(self):
        if not self.shuffle:
            order = np.argsort(-self.lengths, kind="stable")
            yield from (order[i : i + self.batch_size].tolist() for i in range(0, len(order), self.batch_size))
            return
        rng = np.random.default_rng([self.seed, self.epoch])
        order = rng.permutation(len(self.lengths))
        span = self.batch_size * self.group
        batches = []
        for start in range(0, len(order), span):
            group = order[start : start + span]
            group = group[np.argsort(-self.lengths[group], kind="stable")]
            batches += [group[i : i + self.batch_size].tolist() for i in range(0, len(group), self.batch_size)]
        shuffled = [batches[index] for index in rng.permutation(len(batches))]
        yield from (batch for batch in shuffled if len(batch) == self.batch_size)
        yield from (batch for batch in shuffled if len(batch) < self.batch_size)


class DatasetGroupedBatchSampler(torch.utils.data.Sampler):
    """Batches of a `DatasetMixture` that never mix two datasets (two mesh types, frame rates, heads): each dataset's
    indices, repeated `repeats[name]` times an epoch (per-dataset oversampling, UniTalker's `duplicate_list`), are
    batched as `LengthGroupedBatchSampler` batches them, then all datasets' batches are shuffled together, in an order
    fixed by (seed, epoch). Incomplete batches come last (see `LengthGroupedBatchSampler`). Call `set_epoch` first.

    Args:
        group_lengths: `{dataset: [frames per sequence]}` in the mixture's order (its items are numbered through).
        batch_size: items per batch.
        repeats: `{dataset: times per epoch}` (default 1 each).
    """

    def __init__(self, group_lengths: dict, batch_size: int, repeats: dict | None = None, seed: int = 0,
                 group_batches: int = 50):
        repeats = dict(repeats or {})
        unknown = sorted(set(repeats) - set(group_lengths))
        if unknown:
            raise ValueError(f"Repeats for datasets not in the mixture: {unknown} (it has {list(group_lengths)}).")
        if any(int(r) < 1 for r in repeats.values()):
            raise ValueError(f"Every dataset's repeat count must be >= 1, got {repeats}.")
        self.batch_size, self.seed, self.epoch = batch_size, seed, 0
        self.groups = []  # (global indices, one per repeated item; the per-dataset sampler over them)
        offset = 0
        for number, (name, lengths) in enumerate(group_lengths.items()):
            count = int(repeats.get(name, 1))
            indices = np.tile(np.arange(offset, offset + len(lengths)), count)
            sampler = LengthGroupedBatchSampler(np.tile(lengths, count), batch_size, seed=seed * 1000 + number,
                                                group_batches=group_batches)
            self.groups.append((indices, sampler))
            offset += len(lengths)

    def set_epoch(self, epoch: int):
        self.epoch = epoch

    def __len__(self) -> int:
        return sum(len(sampler) for _, sampler in self.groups)

    def __iter__(self):
        batches = []
        for indices, sampler in self.groups:
            sampler.set_epoch(self.epoch)
            batches += [indices[batch].tolist() for batch in sampler]
        rng = np.random.default_rng([self.seed, self.epoch, len(self.groups)])
        shuffled = [batches[index] for index in rng.permutation(len(batches))]
        yield from (batch for batch in shuffled if len(batch) == self.batch_size)
        yield from (batch for batch in shuffled if len(batch) < self.batch_size)
