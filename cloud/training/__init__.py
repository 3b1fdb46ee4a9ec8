"""Model training (needs the `train` extra: TensorFlow CPU)."""
