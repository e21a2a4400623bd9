"""Export: dynamic int8 quantization and ONNX of tiny trained models, with size, latency and metric measured."""
from __future__ import annotations

import json

import pytest
import torch

from shared.toolkit.cli import main
from shared.serving.export import export, load_quantized
from tests.helpers import tiny_text_args

pytest.importorskip("onnxruntime")


@pytest.mark.slow
def test_text_model_exports_to_int8_and_onnx_with_the_same_predictions(tiny_bert_dir, toy_text_files, tmp_path):
    results = main("text_classification", tiny_text_args(tiny_bert_dir, *toy_text_files, tmp_path / "out",
                                                          "--save_strategy", "no", "--data_report", "false"))
    best = tmp_path / "out" / "run" / "best"
    report = export(best, "dynamic-int8", onnx=True)
    assert json.loads((best / "export" / "export_report.json").read_text()) == report
    fp32, int8, onnx = report["fp32"], report["dynamic_int8"], report["onnx"]
    assert fp32["accuracy"] == pytest.approx(results["eval_accuracy"])  # the export re-measures the same model
    assert onnx["accuracy"] == fp32["accuracy"]  # same graph in another runtime: same predictions
    assert int8["accuracy"] >= fp32["accuracy"] - 0.1
    assert int8["size_mb"] < fp32["size_mb"]
    assert all(r["latency_ms_batch1"] > 0 for r in (fp32, int8, onnx))
    quantized = load_quantized(best)
    assert any("quantized" in type(m).__module__ for m in quantized.modules())
    batch = {"input_ids": torch.tensor([[2, 10, 11, 3]]), "attention_mask": torch.ones(1, 4, dtype=torch.long)}
    assert quantized(**batch).logits.shape == (1, 2)


@pytest.mark.slow
def test_vision_model_exports(tmp_path):
    from transformers import TimmWrapperConfig, TimmWrapperForImageClassification

    from tasks.image_classification.sample_data import write_image_folder

    shapes = write_image_folder(tmp_path / "shapes", {"train": 8, "validation": 4}, size=32,
                                classes=["circle", "square"], colour_coded=True)
    data_cfg = {"input_size": [3, 32, 32], "crop_pct": 1.0, "crop_mode": "center", "interpolation": "bilinear",
                "mean": [0.5, 0.5, 0.5], "std": [0.5, 0.5, 0.5]}
    TimmWrapperForImageClassification(TimmWrapperConfig(architecture="test_convnext", num_labels=2,
                                                         pretrained_cfg=data_cfg)).save_pretrained(tmp_path / "convnext")
    main("image_classification", ["--model_name_or_path", str(tmp_path / "convnext"), "--train_dir", str(shapes / "train"),
                                  "--validation_dir", str(shapes / "validation"), "--output_dir", str(tmp_path / "out"),
                                  "--run_name", "run", "--max_train_steps", "2", "--save_strategy", "no",
                                  "--mixed_precision", "no", "--data_report", "false"])
    report = export(tmp_path / "out" / "run" / "best", "dynamic-int8", onnx=True)
    assert report["onnx"]["accuracy"] == report["fp32"]["accuracy"]
    assert report["dynamic_int8"]["size_mb"] < report["fp32"]["size_mb"]
