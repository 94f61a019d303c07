"""harkit's training recipes against MiniRocket on the same windows, over several real datasets.

Each (dataset, seed) is prepared once; every recipe variant trains on it through `harkit.training.train`
(the same code as `harkit train`), and aeon's MiniRocket (MiniRocketClassifier: MiniRocket features and a
ridge classifier with cross-validated regularisation) fits the training and validation windows together,
since it selects nothing on validation. Results are appended to a JSON-lines file, one line per run, and
finished runs are skipped, so the script can be stopped and restarted.

    python docs/results/recipe/compare.py --datasets hapt-s3,uci-s3 --variants article,harkit --seeds 0,1,2
    python docs/results/recipe/compare.py --table    # writes results.md from results.jsonl
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from sklearn.metrics import accuracy_score, f1_score
from sklearn.model_selection import StratifiedShuffleSplit

from harkit.datasets import PrepareConfig, prepare
from harkit.datasets.base import Windows
from harkit.datasets.pipeline import Prepared
from harkit.training.augment import AugmentConfig
from harkit.training.engine import TrainConfig, train

HERE = Path(__file__).resolve().parent
DATA = Path("/work/shared/datasets")
# Subjects outside each dataset's default test subjects; validation subjects are drawn from them by seed.
HAPT_TRAIN = (1, 3, 5, 6, 7, 8, 11, 14, 15, 16)
UCI_TRAIN = (1, 3, 5, 6, 7, 8, 11, 14, 15, 16)
# name: (dataset key, train subjects, overlap, the matching `harkit train` options)
ARCHIVES = {
    "hapt-s3": ("hapt", HAPT_TRAIN[:3], 0.0, "--train-subjects 1,3,5 --overlap 0"),
    "hapt-s10": ("hapt", HAPT_TRAIN, None, "--train-subjects 1,3,5,6,7,8,11,14,15,16"),
    "uci-s3": ("uci-har", UCI_TRAIN[:3], None, "--train-subjects 1,3,5"),
    "uci-s10": ("uci-har", UCI_TRAIN, None, "--train-subjects 1,3,5,6,7,8,11,14,15,16"),
}
PACKAGED = {"vowels": "JapaneseVowels", "wiimote": "PickupGestureWiimoteZ"}
NONE = AugmentConfig()
# "harkit" is the default recipe; the ablations switch one lever off the recipe without augmentation, as run.
VARIANTS = {
    "article": {"recipe": "article"},
    "harkit": {},
    "harkit-no-augment": {"augment": NONE},
    "harkit-no-bn-recal": {"augment": NONE, "bn_recalibrate": False},
    "harkit-no-smoothing": {"augment": NONE, "label_smoothing": 0.0},
    "harkit-no-early-stop": {"augment": NONE, "patience": None},
    "harkit-step": {"augment": NONE, "schedule": "step", "warmup": 0.0},
    "harkit-batch128": {"augment": NONE, "batch_size": 128},
    "harkit-rotate": {"augment": AugmentConfig(rotation=30, scale=0.1, jitter=0.05, shift=0.1)},
}


def packaged(name: str, seed: int) -> Prepared:
    """An aeon-packaged UEA/UCR dataset: its train part split 80/20 (stratified, by seed) into train and val.

    Unequal lengths are padded at the end with each series' last value; channels are standardised with
    the training part's statistics, as harkit's pipeline does.
    """
    from aeon.datasets import load_classification

    loaded = {split: load_classification(PACKAGED[name], split=split) for split in ("train", "test")}
    length = max(series.shape[-1] for x, _ in loaded.values() for series in x)
    parts = {}
    for split, (x, y) in loaded.items():
        x = np.stack([np.pad(s, ((0, 0), (0, length - s.shape[-1])), mode="edge") for s in x])
        parts[split] = (np.asarray(x, np.float32).transpose(0, 2, 1), np.asarray(y))
    classes = sorted(set(parts["train"][1]))
    index = {c: i for i, c in enumerate(classes)}
    x, y = parts["train"][0], np.array([index[c] for c in parts["train"][1]])
    train_idx, val_idx = next(StratifiedShuffleSplit(1, test_size=0.2, random_state=seed).split(x, y))
    mean, std = x[train_idx].mean((0, 1)), x[train_idx].std((0, 1)) + 1e-8

    def windows(xs, ys):
        return Windows(
            ((xs - mean) / std).astype(np.float32),
            ys.astype(np.int64),
            np.zeros(len(ys), np.int64),
            np.zeros(len(ys), dtype=str),
        )

    test_y = np.array([index[c] for c in parts["test"][1]])
    channels = [f"c{i}" for i in range(x.shape[2])]
    meta = {
        "dataset": name,
        "channels": channels,
        "sensors": [],
        "classes": [str(c) for c in classes],
        "window": x.shape[1],
        "step": x.shape[1],
        "sampling_rate": 1.0,
        "mean": mean.tolist(),
        "std": std.tolist(),
        "subjects": {"train": [0], "val": [0], "test": [0]},
    }
    return Prepared(
        windows(x[train_idx], y[train_idx]), windows(x[val_idx], y[val_idx]), windows(parts["test"][0], test_y), meta
    )


def prepared_for(name: str, seed: int) -> Prepared:
    """The windows of one dataset; validation subjects (or windows) are drawn by `seed`."""
    if name in PACKAGED:
        return packaged(name, seed)
    key, subjects, overlap, _ = ARCHIVES[name]
    config = PrepareConfig(overlap=overlap, seed=seed, train_subjects=subjects)
    return prepare(key, config, data_dir=DATA)


def scores(y, predictions) -> dict:
    """Test accuracy and macro F1 (scikit-learn, absent classes score 0)."""
    return {
        "accuracy": float(accuracy_score(y, predictions)),
        "macro_f1": float(f1_score(y, predictions, average="macro", zero_division=0)),
    }


def minirocket(prepared: Prepared, seed: int) -> dict:
    """MiniRocket (aeon) on the training and validation windows together, scored on the test windows."""
    from aeon.classification.convolution_based import MiniRocketClassifier

    x = np.concatenate([np.asarray(prepared.train.x), np.asarray(prepared.val.x)]).transpose(0, 2, 1)
    y = np.concatenate([prepared.train.y, prepared.val.y])
    model = MiniRocketClassifier(random_state=seed, n_jobs=1).fit(x.astype(np.float64), y)
    return scores(prepared.test.y, model.predict(np.asarray(prepared.test.x).transpose(0, 2, 1).astype(np.float64)))


def deep(prepared: Prepared, name: str, variant: str, seed: int, model: str, precision: str) -> dict:
    """One harkit training run (`harkit.training.train`, as `harkit train` runs it) of a recipe variant."""
    config = TrainConfig(
        dataset=prepared.meta["dataset"], model=model, seed=seed, threads=1, precision=precision, **VARIANTS[variant]
    )
    with tempfile.TemporaryDirectory() as folder:
        run = train(config, Path(folder) / "run", progress=False, prepared=prepared)
        metrics = json.loads((run / "metrics.json").read_text())
        resolved = json.loads((run / "config.json").read_text())["resolved"]["recipe"]
    return {
        "accuracy": metrics["accuracy"],
        "macro_f1": metrics["macro_f1"],
        "best_epoch": metrics["best_epoch"],
        "epochs_run": metrics["epochs_run"],
        "batch_size": resolved["batch_size"],
        "epochs": resolved["epochs"],
        "warnings": resolved["warnings"],
    }


def run(args) -> None:
    """Every dataset x seed x variant not yet in the results file."""
    results = HERE / args.results
    done = set()
    if results.is_file():
        for line in results.read_text().splitlines():
            row = json.loads(line)
            done.add((row["dataset"], row["variant"], row["model"], row["seed"], row.get("precision", "fp32")))
    for name in args.datasets.split(","):
        for seed in map(int, args.seeds.split(",")):
            prepared = None
            for variant in args.variants.split(","):
                model = "minirocket" if variant == "minirocket" else args.model
                if (name, variant, model, seed, args.precision) in done:
                    continue
                prepared = prepared or prepared_for(name, seed)
                began = time.perf_counter()
                torch.manual_seed(seed)
                row = (
                    minirocket(prepared, seed)
                    if variant == "minirocket"
                    else deep(prepared, name, variant, seed, model, args.precision)
                )
                row |= {
                    "dataset": name,
                    "variant": variant,
                    "model": model,
                    "seed": seed,
                    "precision": args.precision,
                    "train_windows": len(prepared.train),
                    "val_windows": len(prepared.val),
                    "test_windows": len(prepared.test),
                    "seconds": round(time.perf_counter() - began, 1),
                }
                print(json.dumps(row), flush=True)
                with open(results, "a") as handle:
                    handle.write(json.dumps(row) + "\n")


def table(results: Path) -> str:
    """A Markdown table: one row per dataset, one column per variant, test accuracy / macro F1 (mean over seeds)."""
    rows = [json.loads(line) for line in results.read_text().splitlines() if line.strip()]
    rows = [r for r in rows if r.get("precision", "fp32") == "fp32"]  # bf16 runs are compared apart
    variants = [v for v in ["minirocket", *VARIANTS] if any(r["variant"] == v for r in rows)]
    datasets = [d for d in [*ARCHIVES, *PACKAGED] if any(r["dataset"] == d for r in rows)]
    lines = [
        "| dataset | train / val / test windows | " + " | ".join(variants) + " |",
        "|---" * (len(variants) + 2) + "|",
    ]
    for name in datasets:
        mine = [r for r in rows if r["dataset"] == name]
        cells = []
        for variant in variants:
            runs = [r for r in mine if r["variant"] == variant]
            if not runs:
                cells.append("–")
                continue
            accuracy, f1 = np.mean([r["accuracy"] for r in runs]), np.mean([r["macro_f1"] for r in runs])
            seeds = ",".join(str(r["seed"]) for r in runs)
            cells.append(f"{accuracy:.3f} / {f1:.3f}" + (f" (seeds {seeds})" if len(runs) > 1 else ""))
        sizes = f"{mine[0]['train_windows']} / {mine[0]['val_windows']} / {mine[0]['test_windows']}"
        lines.append(f"| {name} | {sizes} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main() -> None:
    """Command line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", default="hapt-s3,uci-s3,vowels,wiimote,hapt-s10,uci-s10")
    parser.add_argument("--variants", default="minirocket,article,harkit")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--model", default="sann")
    parser.add_argument("--results", default="results.jsonl")
    parser.add_argument("--precision", default="fp32", help="fp32 or bf16 (autocast, for the deep models)")
    parser.add_argument("--table", action="store_true", help="print the Markdown table of the results file")
    args = parser.parse_args()
    if args.table:
        print(table(HERE / args.results), end="")
    else:
        run(args)


if __name__ == "__main__":
    main()
