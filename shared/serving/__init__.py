"""Serving and export: batch prediction (predict.py), Gradio demos, CPU export (int8, ONNX), and the Hub push."""
