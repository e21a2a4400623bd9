"""transformers.Trainer baselines, each configured to match one task's recipe."""
