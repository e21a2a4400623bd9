"""Export a trained model for CPU deployment: `python -m tasks.export <run>/best --quantize dynamic-int8 --onnx`."""
import tasks  # noqa: F401  (registers every task, so the task named in training_info.json resolves)
from shared.serving.export import main

if __name__ == "__main__":
    main()
