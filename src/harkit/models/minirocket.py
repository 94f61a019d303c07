"""MiniRocket (Dempster, Schmidt and Webb, KDD 2021) as a PyTorch module: the classical baseline.

The transform follows the authors' multivariate reference (`MiniRocketMultivariate`) exactly: the 84
length-9 kernels with weights -1 and 2 (three 2s), dilations spread exponentially up to the window,
random channel subsets per kernel-dilation pair, biases from quantiles of the convolution output of one
random training window, proportion-of-positive-values (PPV) pooling, with and without zero padding in
turn. The classifier is the paper's: standardised features and `RidgeClassifierCV` over
`logspace(-3, 3, 10)`, fitted in closed form by `fit` and stored as one linear layer, its scores scaled so that
their softmax is calibrated on left-out windows (predictions unchanged; `_temperature`).

Every fitted quantity is a buffer of a size fixed by the window, so a checkpoint rebuilds the model
with `create_model` and `load_state_dict` like any other, and `forward` exports to ONNX.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import torch
from torch import nn

from harkit import HarkitError
from harkit.models.base import HarModel
from harkit.models.registry import register_model

KERNEL_LENGTH = 9
# The 84 kernels: weight -1 everywhere but 2 at three of the nine positions.
KERNEL_INDICES = tuple(itertools.combinations(range(KERNEL_LENGTH), 3))
NUM_KERNELS = len(KERNEL_INDICES)
RIDGE_ALPHAS = tuple(np.logspace(-3, 3, 10))


def kernel_weights() -> torch.Tensor:
    """The 84 MiniRocket kernels, `[84, 9]`."""
    weights = torch.full((NUM_KERNELS, KERNEL_LENGTH), -1.0)
    for k, indices in enumerate(KERNEL_INDICES):
        weights[k, list(indices)] = 2.0
    return weights


def fit_dilations(window: int, num_features: int, max_dilations_per_kernel: int) -> tuple[list[int], list[int]]:
    """Dilations and the number of features (biases) per kernel at each, as in the reference."""
    features_per_kernel = num_features // NUM_KERNELS
    true_max = min(features_per_kernel, max_dilations_per_kernel)
    multiplier = features_per_kernel / true_max
    max_exponent = np.log2((window - 1) / (KERNEL_LENGTH - 1))
    dilations, counts = np.unique(np.logspace(0, max_exponent, true_max, base=2).astype(np.int32), return_counts=True)
    counts = (counts * multiplier).astype(np.int32)
    remainder = features_per_kernel - int(counts.sum())
    i = 0
    while remainder > 0:
        counts[i] += 1
        remainder -= 1
        i = (i + 1) % len(counts)
    return [int(d) for d in dilations], [int(c) for c in counts]


def quantiles(n: int) -> np.ndarray:
    """The reference's low-discrepancy quantiles: fractional parts of multiples of the golden ratio."""
    return (np.arange(1, n + 1) * ((np.sqrt(5) + 1) / 2)) % 1


class MiniRocket(HarModel):
    """MiniRocket features of windows `[batch, time, channels]` and a linear (ridge) head.

    Args:
        window: samples per window (at least 9).
        channels: input channels.
        num_classes: output classes.
        num_features: transform size (rounded down to a multiple of 84), 10,000 in the paper.
        max_dilations_per_kernel: 32 in the paper.
    """

    def __init__(
        self,
        window: int,
        channels: int,
        num_classes: int,
        num_features: int = 10_000,
        max_dilations_per_kernel: int = 32,
    ) -> None:
        super().__init__()
        if window < KERNEL_LENGTH:
            raise HarkitError(f"minirocket needs windows of at least {KERNEL_LENGTH} samples; got {window}")
        if num_features < NUM_KERNELS:
            raise HarkitError(f"minirocket needs num_features of at least {NUM_KERNELS}; got {num_features}")
        self.window, self.channels = window, channels
        self.dilations, self.features_per_dilation = fit_dilations(window, num_features, max_dilations_per_kernel)
        self.num_features = NUM_KERNELS * sum(self.features_per_dilation)
        num_combinations = NUM_KERNELS * len(self.dilations)
        # Channel subsets per kernel-dilation pair, drawn as in the reference: 2 ** U(0, log2(min(C, 9) + 1)).
        max_exponent = math.log2(min(channels, 9) + 1)
        sizes = (2 ** (torch.rand(num_combinations, dtype=torch.float64) * max_exponent)).long().clamp(1, channels)
        mask = torch.zeros(num_combinations, channels)
        for row, size in enumerate(sizes.tolist()):
            mask[row, torch.randperm(channels)[:size]] = 1.0
        self.register_buffer("channel_mask", mask.view(len(self.dilations), NUM_KERNELS, channels))
        self.register_buffer("biases", torch.zeros(self.num_features))
        self.register_buffer("fitted", torch.zeros((), dtype=torch.bool))
        self.register_buffer("kernels", kernel_weights(), persistent=False)
        self.head = nn.Linear(self.num_features, num_classes)

    def _weight(self, index: int) -> torch.Tensor:
        # One ordinary convolution per dilation: kernel k sums its own channels, as the reference's sum over
        # the channels of a combination does.
        return self.channel_mask[index].unsqueeze(-1) * self.kernels.unsqueeze(1)

    def convolutions(self, x: torch.Tensor):
        """Yield, per dilation, `(index, output [batch, 84, time], padding)` with zero padding 4 * dilation."""
        x = x.transpose(1, 2)
        for index, dilation in enumerate(self.dilations):
            padding = (KERNEL_LENGTH - 1) // 2 * dilation
            yield index, nn.functional.conv1d(x, self._weight(index), padding=padding, dilation=dilation), padding

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        features, start = [], 0
        kernel_parity = torch.arange(NUM_KERNELS, device=x.device) % 2
        for index, out, padding in self.convolutions(x):
            count = self.features_per_dilation[index]
            bias = self.biases[start : start + NUM_KERNELS * count].view(1, NUM_KERNELS, count, 1)
            start += NUM_KERNELS * count
            positive = (out.unsqueeze(2) > bias).float()  # [batch, 84, count, time]
            full = positive.mean(-1)
            valid = positive[..., padding : out.shape[-1] - padding].mean(-1)
            # The reference alternates: even kernel-dilation pairs pool the padded output, odd ones the valid part.
            use_valid = ((kernel_parity + index) % 2).view(1, NUM_KERNELS, 1).bool()
            features.append(torch.where(use_valid, valid, full).flatten(1))
        return torch.cat(features, 1)

    @torch.no_grad()
    def fit_biases(self, x: torch.Tensor, generator: torch.Generator | None = None) -> None:
        """Biases from quantiles of the convolution of one random training window per kernel-dilation pair."""
        start, all_quantiles = 0, quantiles(self.num_features)  # indexed by feature, across dilations
        for index, dilation in enumerate(self.dilations):
            count = self.features_per_dilation[index]
            picks = torch.randint(len(x), (NUM_KERNELS,), generator=generator)
            padding = (KERNEL_LENGTH - 1) // 2 * dilation
            out = nn.functional.conv1d(
                x[picks].transpose(1, 2).double(),
                self._weight(index).double(),
                padding=padding,
                dilation=dilation,
            )  # [84 picked windows, 84 kernels, time]: kernel k uses window picks[k]
            per_kernel = out[torch.arange(NUM_KERNELS), torch.arange(NUM_KERNELS)].cpu().numpy()
            q = all_quantiles[start : start + NUM_KERNELS * count].reshape(NUM_KERNELS, count)
            values = np.stack([np.quantile(per_kernel[k], q[k]) for k in range(NUM_KERNELS)])
            self.biases[start : start + NUM_KERNELS * count] = torch.from_numpy(values.reshape(-1)).to(self.biases)
            start += NUM_KERNELS * count

    @torch.no_grad()
    def transform(self, x: torch.Tensor, batch_size: int = 256) -> torch.Tensor:
        """MiniRocket features `[n, num_features]` of windows `[n, time, channels]`, batch by batch."""
        return torch.cat([self.forward_features(x[s : s + batch_size]) for s in range(0, len(x), batch_size)])

    @torch.no_grad()
    def fit(self, x: torch.Tensor, y: torch.Tensor, seed: int = 0) -> dict:
        """Fit the biases and the ridge classifier (leave-one-out choice of alpha) on training windows.

        Returns `{"alpha": chosen alpha, "temperature": the factor on the scores, "train_logits": [n, num_classes]}`.
        Classes absent from `y` get a constant logit below every training score.
        """
        from sklearn.preprocessing import StandardScaler

        if len(x) < 2:
            raise HarkitError(f"minirocket needs at least 2 training windows to fit; got {len(x)}")
        classes = torch.unique(y).cpu().numpy()
        if len(classes) < 2:
            raise HarkitError(f"minirocket needs at least 2 classes in the training windows; got only {classes}")
        self.fit_biases(x, torch.Generator().manual_seed(seed))
        features = self.transform(x).cpu().numpy().astype(np.float64)
        scaler = StandardScaler(with_mean=False).fit(features)
        standardised, labels = scaler.transform(features), y.cpu().numpy()
        ridge, left_out = _fit_ridge(standardised, labels)
        temperature = _temperature(left_out, labels)
        coef = temperature * np.atleast_2d(ridge.coef_) / scaler.scale_  # standardising folded into the weights
        intercept = temperature * np.atleast_1d(ridge.intercept_)
        if len(classes) == 2:  # sklearn keeps one score for two classes: positive means the second
            coef, intercept = np.concatenate([-coef, coef]), np.concatenate([-intercept, intercept])
        # An absent class gets a constant logit 10 below every training score: it never wins, and a loss computed
        # on these logits (with label smoothing, say) stays finite and readable.
        lowest = temperature * float((standardised @ ridge.coef_.T + ridge.intercept_).min())
        weight = torch.zeros_like(self.head.weight, dtype=torch.float64)
        bias = torch.full_like(self.head.bias, min(lowest, float(intercept.min())) - 10.0, dtype=torch.float64)
        weight[torch.from_numpy(classes)] = torch.from_numpy(coef)
        bias[torch.from_numpy(classes)] = torch.from_numpy(intercept)
        self.head.weight.copy_(weight)
        self.head.bias.copy_(bias)
        self.fitted.fill_(True)
        # The training windows' logits, from the features already computed: a second transform would double the cost.
        logits = (
            torch.from_numpy(features).to(self.head.weight.device) @ self.head.weight.double().T
            + self.head.bias.double()
        )
        return {"alpha": float(ridge.alpha_), "temperature": temperature, "train_logits": logits.float()}

    def feature_modules(self) -> list[nn.Module]:
        return []


def _fit_ridge(features: np.ndarray, labels: np.ndarray) -> tuple[object, np.ndarray]:
    """`RidgeClassifierCV` over `RIDGE_ALPHAS` as the paper fits it, and each training window's left-out scores
    at the alpha it chose (`[n, classes]`, or `[n, 1]` for two classes).

    The scorer is sklearn's default criterion, the mean squared leave-one-out error of the +-1 targets; given as
    a scorer, it also receives the left-out scores, which the default keeps only as squared errors.
    """
    from sklearn.linear_model import RidgeClassifierCV

    classes = np.unique(labels)
    targets = np.where(labels[:, None] == classes[None, :], 1.0, -1.0)
    targets = targets[:, 1:] if len(classes) == 2 else targets  # one score for two classes, as sklearn keeps
    left_out = []

    def negative_squared_error(estimator, predictions, y, **params) -> float:
        left_out.append(np.asarray(predictions, np.float64).reshape(targets.shape))
        return -float(np.mean((targets - left_out[-1]) ** 2))

    ridge = RidgeClassifierCV(alphas=RIDGE_ALPHAS, scoring=negative_squared_error).fit(features, labels)
    return ridge, left_out[int(np.argmin(np.abs(np.array(RIDGE_ALPHAS) - ridge.alpha_)))]


def _temperature(left_out: np.ndarray, labels: np.ndarray) -> float:
    """The factor on the ridge scores whose softmax best predicts left-out windows (least log loss).

    Ridge scores regress +-1 targets, so their softmax is nearly flat: about 0.5 top probability where the
    classifier is right 9 times in 10. The scores of each training window with that window left out (ridge's
    closed-form leave-one-out) are an honest sample to scale on; the ranking, so every prediction, is unchanged.
    """
    from scipy.optimize import minimize_scalar
    from scipy.special import log_softmax

    scores = np.concatenate([-left_out, left_out], axis=1) if left_out.shape[1] == 1 else left_out
    index = np.searchsorted(np.unique(labels), labels)

    def log_loss(log_factor: float) -> float:
        return -log_softmax(np.exp(log_factor) * scores, axis=1)[np.arange(len(index)), index].mean()

    return float(np.exp(minimize_scalar(log_loss, bounds=(np.log(0.1), np.log(100.0)), method="bounded").x))


@register_model("minirocket")
def minirocket(
    window: int, channels: int, num_classes: int, num_features: int = 10_000, max_dilations_per_kernel: int = 32
) -> HarModel:
    """MiniRocket: fixed random convolutions and PPV pooling, a ridge head fitted in closed form (no epochs)."""
    return MiniRocket(window, channels, num_classes, num_features, max_dilations_per_kernel)
