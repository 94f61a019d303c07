"""The article's training recipe for SANN, in a process of its own, one epoch at a time.

A shuffled `DataLoader` over a `TensorDataset`, AdamW (lr 5e-4, weight decay 1e-3), StepLR (every third of the
epochs, gamma 0.5), cross-entropy, batch 128, fp32, eager: the script a reader of the article writes. It runs in
a fresh process so that nothing harkit sets for its own process (the allocator setting of
`harkit.hardware.keep_freed_memory`, compiled kernels) speeds it up or slows it down: it runs as it would alone.
The two processes take turns, so they never share the cores.
"""

from __future__ import annotations

import multiprocessing
import time
from multiprocessing.connection import Connection

import numpy as np
import torch
from torch.utils.data import DataLoader, TensorDataset

from harkit.models import create_model
from harkit.training.engine import predict_logits


def test_accuracy(model: torch.nn.Module, x_test: torch.Tensor, y_test: np.ndarray) -> float:
    """Accuracy on the test windows (already on the model's device), predicted in batches of 256."""
    return float((predict_logits(model, x_test, 256).argmax(1).cpu().numpy() == np.asarray(y_test)).mean())


def _serve(connection: Connection, arrays: tuple, shape: tuple, epochs: int, threads: int, device: str) -> None:
    """Train one epoch per request; answer (training seconds, test accuracy)."""
    torch.set_num_threads(threads)
    x, y, x_test, y_test = arrays
    torch.manual_seed(0)
    model = create_model("sann", *shape).to(device)
    loader = DataLoader(TensorDataset(torch.from_numpy(x), torch.from_numpy(y)), batch_size=128, shuffle=True)
    optimizer = torch.optim.AdamW(model.parameters(), lr=5e-4, weight_decay=1e-3)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=max(1, epochs // 3), gamma=0.5)
    criterion = torch.nn.CrossEntropyLoss()
    x_test_device = torch.from_numpy(x_test).to(device)
    while connection.recv():
        began = time.perf_counter()
        model.train()
        for xb, yb in loader:
            xb, yb = xb.to(device), yb.to(device)
            optimizer.zero_grad()
            criterion(model(xb), yb).backward()
            optimizer.step()
        scheduler.step()
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        seconds = time.perf_counter() - began
        connection.send((seconds, test_accuracy(model, x_test_device, y_test)))


class ArticleRecipe:
    """`epoch()` trains the next epoch in the recipe's own process and returns (training seconds, test accuracy)."""

    def __init__(self, prepared, epochs: int, threads: int | None = None, device: str = "cpu") -> None:
        meta = prepared.meta
        arrays = (
            np.asarray(prepared.train.x, np.float32),
            np.asarray(prepared.train.y, np.int64),
            np.asarray(prepared.test.x, np.float32),
            np.asarray(prepared.test.y),
        )
        shape = (meta["window"], len(meta["channels"]), len(meta["classes"]))
        context = multiprocessing.get_context("spawn")  # a fresh interpreter: no state of this process
        self._connection, child = context.Pipe()
        threads = threads or torch.get_num_threads()
        self._process = context.Process(
            target=_serve, args=(child, arrays, shape, epochs, threads, device), daemon=True
        )
        self._process.start()
        self.epochs, self.done = epochs, 0

    def epoch(self) -> tuple[float, float]:
        self._connection.send(True)
        self.done += 1
        return self._connection.recv()

    def close(self) -> None:
        if self._process.is_alive():
            self._connection.send(False)
            self._process.join()

    def __enter__(self) -> ArticleRecipe:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
