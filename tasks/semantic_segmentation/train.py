"""Fine-tune a semantic segmentation model: `accelerate launch tasks/semantic_segmentation/train.py [--flags]`."""
import tasks  # noqa: F401  (registers every task and the project's pipeline tags)
from shared.toolkit.cli import main

if __name__ == "__main__":
    main("semantic_segmentation")
