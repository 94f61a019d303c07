"""Latency figures say what they measure."""

import torch

from harkit.evaluation.cost import describe_latency, measure_latency
from harkit.models import create_model


def test_latency_records_and_says_what_it_measures():
    model = create_model("cnn", 32, 6, 4, width=0.125)
    latency = measure_latency(model, 32, 6, (1, 8), repeats=2, warmup=1)
    assert latency["batch_1"]["windows_per_batch"] == 1 and latency["batch_8"]["windows_per_batch"] == 8
    assert "forward pass per batch" in latency["measures"] and "median" in latency["measures"]
    assert latency["threads"] == torch.get_num_threads()
    text = describe_latency(latency)
    assert "per window classified alone (batch 1)" in text
    assert "per batch of 8 windows" in text and "ms per window)" in text
    assert f"{torch.get_num_threads()} threads" in text and text.count("cpu") == 1
