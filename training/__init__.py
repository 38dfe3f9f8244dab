"""Data pipelines, sample-data generators and training scripts for wav2sem (not imported by `modeling_wav2sem`)."""
