"""Code the training scripts share: checkpoints, Hub uploads and cards, process settings, audio, logging, sampling."""
