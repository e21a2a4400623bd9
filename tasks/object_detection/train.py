"""Fine-tune an object detector: `accelerate launch tasks/object_detection/train.py [--flags]`."""
import tasks  # noqa: F401  (registers every task and the project's pipeline tags)
from shared.toolkit.cli import main

if __name__ == "__main__":
    main("object_detection")
