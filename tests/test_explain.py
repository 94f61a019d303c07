from dataclasses import replace

import pytest
import torch

from harkit import HarkitError
from harkit.explain import attention_maps, explain_run
from harkit.models import create_model
from harkit.training.engine import train


def test_attention_maps_have_one_entry_per_stage():
    model = create_model("sann", 64, 6, 6, width=0.125).eval()
    maps = attention_maps(model, torch.randn(3, 64, 6))
    assert [m.shape for m in maps] == [(3, 32, 6), (3, 16, 6), (3, 8, 6), (3, 4, 6)]
    assert all(((m > 0) & (m < 1)).all() for m in maps)
    assert all(not module.keep_attention for module in model.attention_modules())


def test_explain_writes_figures_and_refuses_models_without_attention(tiny_config, tmp_path):
    run = train(replace(tiny_config, epochs=2, lr=5e-3), tmp_path / "run", progress=False)
    files = explain_run(run, tmp_path / "attention", per_class=1)
    assert files and all(f.stat().st_size > 10_000 for f in files)
    assert files[-1].name == "attention_per_class.png"
    cnn = create_model("cnn", 64, 6, 6).eval()
    with pytest.raises(HarkitError, match="has no spatial attention"):
        attention_maps(cnn, torch.zeros(1, 64, 6))
