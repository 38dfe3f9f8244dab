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
