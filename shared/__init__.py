"""The task-agnostic engine. A task (tasks/<name>/) implements the contract in task.py; run.py assembles a run
from its hooks; the subpackages hold the rest:

    toolkit/     config, CLI entry points, devices and processes, optional extras, packaged backbones
    inputs/      data files and hub datasets, the data report, vision options and transforms
    training/    the engine loop, checkpoints and resume, sampling, optimizers, losses, distillation, tuning
    evaluation/  metric modules and results, logging and trackers, plots
    serving/     batch prediction, demos, export, the Hub

Nothing here imports tasks/ or names a task.
"""
