"""Gradio demo of a fine-tuned text classifier: `python apps/text_classification.py [--model DIR] [--port P]`."""
import os

os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"  # before gradio loads: the demo makes no outside connection
import tasks  # noqa: E402,F401  (registers every task and the project's pipeline tags)
from shared.serving.demo import main  # noqa: E402

if __name__ == "__main__":
    main("text_classification")  # a refusal: one `error:` line, exit 2 (shared.toolkit.cli.entry_point)
