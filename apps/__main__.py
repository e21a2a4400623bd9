"""Every trained model in one Gradio app, one tab per task: `python -m apps --models_dir outputs/`."""
import os

os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"  # before gradio loads: the demo makes no outside connection
import tasks  # noqa: E402,F401  (registers every task and the project's pipeline tags)
from shared.serving.demo import serve_all  # noqa: E402

if __name__ == "__main__":
    serve_all()  # a refusal: one `error:` line, exit 2 (shared.toolkit.cli.entry_point)
