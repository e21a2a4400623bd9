"""Side-by-side benchmarks of the engine against transformers.Trainer on the same model and data."""
