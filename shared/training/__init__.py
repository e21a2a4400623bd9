"""The training loop and its state: the engine, checkpoints and exact resume, sampling, optimizers and
schedules, losses, distillation, EMA, divergence guards, LoRA, and hyperparameter search."""
