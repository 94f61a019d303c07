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


def test_explain_names_the_model_and_refuses_one_without_attention_before_reading_data(tiny_config, hapt_dir, tmp_path):
    import shutil

    config = replace(tiny_config, model="cnn", epochs=1)
    run = train(config, tmp_path / "cnn", progress=False, evaluate=False)
    shutil.rmtree(hapt_dir)  # refused from the checkpoint alone: no data is read
    with pytest.raises(HarkitError, match=r"holds a cnn model, which has no spatial attention") as error:
        explain_run(run, tmp_path / "attention")
    assert "SpatialAttentionNeuralNetwork" not in str(error.value)
    assert not (tmp_path / "attention").exists()


def test_attention_heatmaps_are_scaled_per_map(monkeypatch, tmp_path):
    import numpy as np

    from harkit import explain

    figures = []
    monkeypatch.setattr(explain.plt, "close", figures.append)
    narrow = [np.full((32, 6), 0.5) + np.linspace(0, 0.02, 32)[:, None], np.linspace(0.2, 0.9, 16 * 6).reshape(16, 6)]
    explain._plot_window(np.zeros((64, 6)), narrow, list("abcdef"), 50.0, "t", tmp_path / "w.png")
    images = [ax.images[0] for ax in figures[0].axes if ax.images]
    assert [c for image in images for c in image.get_clim()] == pytest.approx([0.5, 0.52, 0.2, 0.9])
    explain.plt.close(figures[0])
