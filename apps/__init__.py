"""Gradio apps: one per task (`python apps/<task>.py`) and the launcher of them all (`python -m apps`)."""
