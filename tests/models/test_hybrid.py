import pytest
import torch

from harkit.models import create_model


@pytest.mark.parametrize("name", ["sann-lstm", "sann-transformer"])
def test_hybrids_know_which_channel_a_feature_came_from(name):
    # The convolutions share weights across channel columns; a hybrid that pooled the columns would give
    # the same output for swapped channels (e.g. gravity on x or on z) and could not tell postures apart.
    torch.manual_seed(0)
    model = create_model(name, 64, 6, 4, width=0.125, dim=16).eval()
    x = torch.randn(3, 64, 6)
    with torch.no_grad():
        swapped = model(x[:, :, [2, 1, 0, 3, 4, 5]])
        assert not torch.allclose(model(x), swapped, atol=1e-4)
    assert model.project.in_features == 64 * 6  # widths[-1] (512 x 0.125) x channels
