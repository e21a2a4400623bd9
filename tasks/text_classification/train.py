"""Fine-tune a text classifier: `accelerate launch tasks/text_classification/train.py [--flags]`."""
import tasks  # noqa: F401  (registers every task and the project's pipeline tags)
from shared.toolkit.cli import main

if __name__ == "__main__":
    main("text_classification")
