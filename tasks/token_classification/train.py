"""Fine-tune a named-entity tagger: `accelerate launch tasks/token_classification/train.py [--flags]`."""
import tasks  # noqa: F401  (registers every task and the project's pipeline tags)
from shared.toolkit.cli import main

if __name__ == "__main__":
    main("token_classification")
