"""Data pipelines, sample-data generators and training scripts for wav2sem (not imported by `modeling_wav2sem`).

In a checkout this is `training` (`python -m training.<script>`, `accelerate launch training/pretrain.py`); a wheel
installs it as `wav2sem_training`, with the `wav2sem-*` commands (setup.cfg), so its imports are relative.
"""
