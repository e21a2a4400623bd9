"""Knowledge distillation: the KL term, teacher checks, and a student that learns from the teacher alone."""
from __future__ import annotations

import pytest
import torch

from shared.toolkit.cli import main
from shared.training.distill import distillation_kl
from tests.helpers import tiny_text_args, toy_reviews, write_csv


def test_kl_is_zero_for_equal_logits_positive_otherwise_and_works_per_position():
    logits = torch.randn(4, 3, 5, 6)
    assert distillation_kl(logits, logits.clone(), 2.0).abs() < 1e-6
    assert distillation_kl(torch.zeros(4, 3, 5, 6), logits, 2.0) > 0
    # a teacher map of another size is resized to the student's
    assert distillation_kl(torch.zeros(2, 3, 4, 4), torch.zeros(2, 3, 8, 8), 1.0).abs() < 1e-6
    # T^2 scaling keeps gradient size comparable across temperatures (Hinton et al.)
    student = torch.randn(8, 4, requires_grad=True)
    teacher = torch.randn(8, 4)
    distillation_kl(student, teacher, 1.0).backward()
    assert student.grad.abs().sum() > 0


@pytest.mark.slow
def test_student_learns_from_the_teacher_alone(tiny_bert_dir, toy_text_files, tmp_path):
    main("text_classification", tiny_text_args(tiny_bert_dir, *toy_text_files, tmp_path / "teacher"))
    teacher = tmp_path / "teacher" / "run" / "best"
    # alpha 1: the labels are ignored, every gradient comes from the teacher's soft targets
    student = main("text_classification", tiny_text_args(
        tiny_bert_dir, *toy_text_files, tmp_path / "student", "--teacher_model", str(teacher),
        "--distill_alpha", "1.0", "--distill_temperature", "2"))
    assert student["eval_accuracy"] >= 0.9


def test_teacher_with_other_labels_is_refused_before_training(tiny_bert_dir, toy_text_files, tmp_path, capsys):
    three = write_csv(tmp_path / "three.csv", [(t, ["x", "y", "z"][i % 3]) for i, (t, _) in
                                               enumerate(toy_reviews(30, seed=0))])
    main("text_classification", tiny_text_args(tiny_bert_dir, three, three, tmp_path / "teacher",
                                                "--max_train_steps", "1", "--eval_strategy", "no"))
    with pytest.raises(SystemExit):
        main("text_classification", tiny_text_args(tiny_bert_dir, *toy_text_files, tmp_path / "student",
                                                    "--teacher_model", str(tmp_path / "teacher" / "run" / "best")))
    assert "was trained on labels ['x', 'y', 'z']" in capsys.readouterr().err
    assert not (tmp_path / "student" / "run" / "metrics.jsonl").exists()


@pytest.mark.slow
def test_image_student_trains_with_a_timm_teacher(tmp_path):
    from transformers import TimmWrapperConfig, TimmWrapperForImageClassification

    from tasks.image_classification.sample_data import write_image_folder

    shapes = write_image_folder(tmp_path / "shapes", {"train": 8, "validation": 4}, size=32,
                                classes=["circle", "square"], colour_coded=True)
    data_cfg = {"input_size": [3, 32, 32], "crop_pct": 1.0, "crop_mode": "center", "interpolation": "bilinear",
                "mean": [0.5, 0.5, 0.5], "std": [0.5, 0.5, 0.5]}
    TimmWrapperForImageClassification(TimmWrapperConfig(architecture="test_convnext", num_labels=2,
                                                         pretrained_cfg=data_cfg)).save_pretrained(tmp_path / "m")
    args = lambda out, *extra: ["--model_name_or_path", str(tmp_path / "m"), "--train_dir", str(shapes / "train"),
                                "--validation_dir", str(shapes / "validation"), "--output_dir", str(tmp_path / out),
                                "--run_name", "run", "--max_train_steps", "3", "--save_strategy", "no",
                                "--mixed_precision", "no", "--logging_steps", "1", *extra]
    main("image_classification", args("teacher"))
    results = main("image_classification", args("student", "--teacher_model", str(tmp_path / "teacher/run/best")))
    assert results["global_step"] == 3
    with pytest.raises(SystemExit):  # mixing images would show the teacher other pixels than the student
        main("image_classification", args("mixed", "--teacher_model", str(tmp_path / "teacher/run/best"),
                                          "--mixup_alpha", "0.2"))
