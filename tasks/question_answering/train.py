"""Fine-tune an extractive QA model: `accelerate launch tasks/question_answering/train.py [--flags]`."""
import tasks  # noqa: F401  (registers every task and the project's pipeline tags)
from shared.toolkit.cli import main

if __name__ == "__main__":
    main("question_answering")
