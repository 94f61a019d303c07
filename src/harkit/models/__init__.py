"""Models, one module per family, built by name: `create_model("sann", window, channels, num_classes)`."""

from harkit.models import hybrid, minirocket, recurrent, sann, tiny, transformer  # noqa: F401  (registers the models)
from harkit.models.base import HarModel, count_parameters
from harkit.models.registry import create_model, list_models, model_options, register_model
from harkit.models.sann import SpatialAttentionModule, SpatialAttentionNeuralNetwork

__all__ = [
    "HarModel",
    "SpatialAttentionModule",
    "SpatialAttentionNeuralNetwork",
    "count_parameters",
    "create_model",
    "list_models",
    "model_options",
    "register_model",
]
