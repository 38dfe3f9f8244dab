# Copyright 2026 The wav2sem authors. Licensed under the Apache License, Version 2.0.
"""What the checkpoint converters share: comparing a renamed state dict with the one the model expects, so that every
missing, unexpected or mis-shaped tensor is named in one clear error instead of being dropped by a non-strict load."""

from collections.abc import Callable, Collection, Mapping


def tensor_shape(value) -> tuple[int, ...]:
    """The shape of a tensor or array as a tuple of ints."""
    return tuple(int(n) for n in value.shape)


def rename_state_dict(
    state_dict: Mapping, rename: Callable[[str], str], set_aside: Collection[str] = ()
) -> tuple[dict, dict, dict]:
    """`(renamed, set_aside_tensors, sources)`: every key of `state_dict` renamed with `rename` (`sources` maps each
    new key to its original one), except the keys in `set_aside` (non-parameter tensors, returned apart). Two keys
    that map to the same new key are a `ValueError` naming both."""
    renamed, aside, sources = {}, {}, {}
    for key, value in state_dict.items():
        if key in set_aside:
            aside[key] = value
            continue
        new_key = rename(key)
        if new_key in renamed:
            raise ValueError(f"Two checkpoint keys map to {new_key!r}: {sources[new_key]!r} and {key!r}.")
        renamed[new_key], sources[new_key] = value, key
    return renamed, aside, sources


def state_dict_mismatches(
    expected: Mapping[str, tuple[int, ...]], found: Mapping, describe: Callable[[str], str] | None = None
) -> list[str]:
    """`["missing: [...]", "unexpected: [...]", "wrong shapes: ..."]` for the keys of `found` (a renamed checkpoint)
    against `expected` (key -> shape of the model's state dict); empty when they match. `describe` names an
    unexpected key (e.g. with the checkpoint's original name)."""
    describe = describe or (lambda key: key)
    missing = sorted(set(expected) - set(found))
    extra = sorted(set(found) - set(expected))
    wrong = sorted(k for k in set(expected) & set(found) if tensor_shape(found[k]) != tuple(expected[k]))
    details = []
    if missing:
        details.append(f"missing: {missing}")
    if extra:
        details.append(f"unexpected: {[describe(k) for k in extra]}")
    if wrong:
        details.append(
            "wrong shapes: " + ", ".join(f"{k} {tensor_shape(found[k])} (expected {tuple(expected[k])})" for k in wrong)
        )
    return details
