"""The endoscopy-seg model's pre-processing, post-processing (findings, smoothing) and evaluation."""
