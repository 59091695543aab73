"""The plain lines of ``RunReport``: fractions as percentages, other metrics short, one split at a time."""

from __future__ import annotations

import pytest

from reft_lightning.run_report import RunReport, format_metric, metric_line


def test_fractions_print_as_percentages_and_the_rest_short() -> None:
    assert format_metric("accuracy", 0.5600000023841858) == "accuracy 56.0%"
    assert format_metric("pass@8", 0.884) == "pass@8 88.4%"
    assert format_metric("voting@32", 1.0) == "voting@32 100.0%"
    assert format_metric("extracted", 0.998) == "extracted 99.8%"
    assert format_metric("loss", 0.0784941092133522) == "loss 0.07849"
    assert format_metric("kl", 1234.5678) == "kl 1235"


def test_a_line_holds_only_its_split_sorted_by_name() -> None:
    metrics = {"val/loss": 0.5, "val/accuracy": 0.73, "train/loss": 9.0, "test/accuracy": 0.1}
    line = metric_line("validation", metrics, "val", "epoch 2  step 10  iteration 5")
    assert line == "validation  epoch 2  step 10  iteration 5:  accuracy 73.0%  loss 0.5"
    assert metric_line("test", metrics, "test") == "test:  accuracy 10.0%"


def test_unknown_validation_lines_setting_is_refused() -> None:
    with pytest.raises(ValueError, match="validation_lines must be auto, always or never"):
        RunReport(validation_lines="sometimes")
