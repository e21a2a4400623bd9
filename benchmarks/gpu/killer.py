"""Train a task and SIGKILL the process right after checkpoint STEP is complete: `killer.py TASK STEP [flags]`."""
import os
import signal
import sys

import tasks  # noqa: F401  (registers every task)
from shared.training import checkpoint
from shared.toolkit.cli import main

task, step = sys.argv[1], int(sys.argv[2])
save = checkpoint.CheckpointManager.save


def save_then_die(self, accelerator, state, *args, **kwargs):
    path = save(self, accelerator, state, *args, **kwargs)
    if state.step == step:  # a real SIGKILL at an exact point: no handler, no flush, no cleanup runs
        os.kill(os.getpid(), signal.SIGKILL)
    return path


checkpoint.CheckpointManager.save = save_then_die
main(task, sys.argv[3:])
