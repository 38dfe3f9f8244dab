"""Procedural talking-face generator used to build synthetic VOCASET / BIWI style sample data.

The pieces:

* :mod:`training.faces.visemes` -- espeak-ng phoneme mnemonic -> articulatory targets, and the
  dominance-function coarticulation that turns a phoneme timeline into per-frame mouth parameters.
* :mod:`training.faces.mesh` -- a small parametric face mesh (lips, jaw, teeth/tongue tip, eyes,
  brows, forehead) with per-subject shape variation and a deformation function.
* :mod:`training.faces.animate` -- subjects (templates + speaking styles), blinks, brow raises,
  head motion and deterministic noise; produces ``T x V x 3`` vertex sequences.
* :mod:`training.faces.corpus` -- reads a LibriSpeech-layout corpus with ``*.alignment.jsonl``
  phoneme-timing sidecars.
* :mod:`training.faces.datasets` -- VOCASET / BIWI processed layouts (names, splits, writers).
* :mod:`training.faces.regions` -- lip / upper-face region files (read and write).
* :mod:`training.faces.render` -- matplotlib front-view rendering (PNG previews, GIFs).

Everything is numpy; nothing here needs a GPU or network access.
"""
