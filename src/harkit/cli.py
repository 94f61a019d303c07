"""The `harkit` command: a thin layer over the Python API that parses arguments and prints."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from harkit import HarkitError

app = typer.Typer(
    help="Human Activity Recognition from wearable sensors.", no_args_is_help=True, pretty_exceptions_enable=False
)
console = Console()

DataDir = Annotated[Path | None, typer.Option(help="Folder with archives or extracted trees [env HARKIT_DATA_DIR].")]
CacheDir = Annotated[Path | None, typer.Option(help="Folder for extracted archives and prepared arrays.")]
Options = Annotated[list[str] | None, typer.Option("--option", help="Dataset reader option KEY=VALUE, repeatable.")]


def parse_options(items: list[str] | None) -> dict:
    """`["transitions=true", "task=locomotion"]` -> `{"transitions": True, "task": "locomotion"}`."""
    options = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep:
            raise HarkitError(f"option {item!r} is not KEY=VALUE")
        try:
            options[key.replace("-", "_")] = json.loads(value.lower() if value.lower() in ("true", "false") else value)
        except json.JSONDecodeError:
            options[key.replace("-", "_")] = value
    return options


def _run(action):
    """Run a command body; a HarkitError becomes a one-line message and exit code 2."""
    try:
        return action()
    except HarkitError as error:
        console.print(f"[bold red]error:[/] {error}", highlight=False)
        raise typer.Exit(2) from None


@app.callback()
def main(verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log what happens.")] = False) -> None:
    """Human Activity Recognition from wearable sensors."""
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING, format="%(levelname)s %(message)s")


@app.command()
def datasets(
    describe: Annotated[Path | None, typer.Option(help="Show what harkit understands of a folder dataset.")] = None,
    template: Annotated[Path | None, typer.Option(help="Write a harkit.toml and example recordings here.")] = None,
) -> None:
    """List the datasets with their facts, describe a folder of recordings, or start one from a template."""
    from harkit.datasets import get_dataset, list_datasets
    from harkit.datasets.folder import write_template

    def body():
        if template is not None:
            for path in write_template(template):
                console.print(f"wrote {path}")
            console.print(f"next: harkit datasets --describe {template}; harkit prepare {template}")
            return
        if describe is not None:
            print_description(get_dataset(str(describe)).describe_recordings())
            return
        table = Table(title="harkit datasets")
        for column in ("key", "Hz", "window", "overlap", "channels", "classes", "default test part"):
            table.add_column(column)
        for key in list_datasets():
            d = get_dataset(key).describe()
            test = d["test_subjects"] or [f"S{s}-{r}" for s, r in d["test_sessions"]]
            table.add_row(
                key,
                f"{d['rate']:.4g}",
                str(d["window"]),
                f"{d['overlap']:.0%}",
                str(len(d["channels"])),
                str(len(d["classes"])),
                " ".join(map(str, test)),
            )
        console.print(table)
        console.print("Any folder with a harkit.toml is a dataset too: harkit datasets --template DIR")

    _run(body)


def print_description(facts: dict) -> None:
    """What harkit understood of a folder dataset."""
    console.print(
        f"[bold]{facts['folder']}[/]: {facts['recordings']} recordings, {len(facts['subjects'])} subjects, "
        f"{facts['sampling_rate']:g} Hz, window {facts['window']} ({facts['overlap']:.0%} overlap)",
        highlight=False,
    )
    console.print(
        f"subjects: {', '.join(f'{k} ({v})' if str(k) != v else str(k) for k, v in facts['subjects'].items())}"
        f"; held out for testing by default: {facts['test_subjects']}",
        highlight=False,
    )
    console.print(f"channels: {', '.join(facts['channels'])}; 3-axis sensors: {facts['sensors']}", highlight=False)
    table = Table()
    for column in ("class", "samples", "duration"):
        table.add_column(column, justify="left" if column == "class" else "right")
    for name, counts in facts["classes"].items():
        table.add_row(name, str(counts["samples"]), f"{counts['seconds'] / 60:.1f} min")
    table.add_row("(unlabelled)", str(facts["unlabelled_samples"]), "")
    console.print(table)


def prepare_config(window, overlap, split, fold, val_fraction, channels, normalize, seed):
    """A `PrepareConfig` from CLI values."""
    from harkit.datasets import PrepareConfig, SubjectSplit

    return PrepareConfig(
        window=window,
        overlap=overlap,
        split=SubjectSplit.parse(split, fold),
        val_fraction=val_fraction,
        channels=tuple(channels.split(",")) if channels else None,
        normalize=normalize,
        seed=seed,
    )


Window = Annotated[int | None, typer.Option(help="Window length in samples [dataset default].")]
Overlap = Annotated[float | None, typer.Option(help="Window overlap in [0, 1) [dataset default].")]
Split = Annotated[str, typer.Option(help="default, loso, K (k folds by subject) or s:1,2 (test subjects).")]
Fold = Annotated[int, typer.Option(help="Which fold of loso / K to hold out.")]
ValFraction = Annotated[float, typer.Option(help="Fraction of training subjects kept for validation.")]
Channels = Annotated[str | None, typer.Option(help="Comma-separated channel names to keep.")]
Seed = Annotated[int, typer.Option(help="Random seed.")]


@app.command()
def prepare(
    dataset: Annotated[str, typer.Argument(help="Dataset key (see `harkit datasets`).")],
    data_dir: DataDir = None,
    cache_dir: CacheDir = None,
    window: Window = None,
    overlap: Overlap = None,
    split: Split = "default",
    fold: Fold = 0,
    val_fraction: ValFraction = 0.2,
    channels: Channels = None,
    normalize: Annotated[bool, typer.Option(help="z-score with training statistics.")] = True,
    seed: Seed = 0,
    option: Options = None,
    export: Annotated[Path | None, typer.Option(help="Write x/y/subject .npy per split and meta.json here.")] = None,
    no_download: Annotated[bool, typer.Option(help="Never download; fail if the data is not found.")] = False,
) -> None:
    """Read, window, split and normalise a dataset; print shapes and class counts."""
    from harkit.datasets import prepare as prepare_dataset

    def body():
        config = prepare_config(window, overlap, split, fold, val_fraction, channels, normalize, seed)
        prepared = prepare_dataset(
            dataset,
            config,
            data_dir=data_dir,
            cache_dir=cache_dir,
            allow_download=not no_download,
            **parse_options(option),
        )
        print_prepared(prepared)
        if export:
            prepared.export(export)
            console.print(f"exported to {export}")

    _run(body)


def print_prepared(prepared) -> None:
    """Per-split shapes, subjects and class counts."""
    meta = prepared.meta
    table = Table(
        title=f"{meta['dataset']}: window {meta['window']} @ {meta['sampling_rate']:g} Hz, "
        f"{len(meta['channels'])} channels"
    )
    table.add_column("class")
    for name in ("train", "val", "test"):
        table.add_column(f"{name} {tuple(prepared.part(name).x.shape)}", justify="right")
    for index, name in enumerate(meta["classes"]):
        table.add_row(name, *(str(meta["counts"][part][index]) for part in ("train", "val", "test")))
    table.add_row("subjects", *(" ".join(map(str, meta["subjects"][p])) for p in ("train", "val", "test")))
    console.print(table)


@app.command()
def models(
    dataset: Annotated[str | None, typer.Option(help="Take window, channels and classes from this dataset.")] = None,
    window: Annotated[int, typer.Option(help="Window length.")] = 128,
    channels: Annotated[int, typer.Option(help="Number of channels.")] = 9,
    classes: Annotated[int, typer.Option(help="Number of classes.")] = 6,
) -> None:
    """List the models with parameter counts and multiply-adds for one input shape."""
    from harkit.datasets import get_dataset
    from harkit.evaluation.cost import count_macs
    from harkit.models import count_parameters, create_model, list_models, model_options

    def body():
        nonlocal window, channels, classes
        if dataset:
            facts = get_dataset(dataset)
            window, channels, classes = facts.window, len(facts.channels), len(facts.classes)
        table = Table(title=f"models for windows of {window} x {channels}, {classes} classes")
        for column in ("model", "parameters", "MACs / window", "options"):
            table.add_column(column, justify="right" if column in ("parameters", "MACs / window") else "left")
        for name in list_models():
            model = create_model(name, window, channels, classes)
            options = ", ".join(f"{k}={v}" for k, v in model_options(name).items())
            table.add_row(name, f"{count_parameters(model):,}", f"{count_macs(model, window, channels):,}", options)
        console.print(table)

    _run(body)


def print_metrics(metrics: dict) -> None:
    """The headline numbers and the per-class table of an evaluated run."""
    latency = metrics["latency"]
    batch = next(k for k in latency if k.startswith("batch_") and k != "batch_1")
    console.print(
        f"[bold]{metrics['model']}[/] on [bold]{metrics['dataset']}[/] ({metrics['samples']} test windows): "
        f"accuracy {metrics['accuracy']:.4f}  macro F1 {metrics['macro_f1']:.4f}  "
        f"macro precision {metrics['macro_precision']:.4f}  macro recall {metrics['macro_recall']:.4f}  "
        f"weighted F1 {metrics['weighted_f1']:.4f}",
        highlight=False,
    )
    console.print(
        f"{metrics['parameters']:,} parameters, {metrics['macs_per_window']:,} MACs per window; latency on "
        f"{latency['device']}: {latency['batch_1']['median_ms']:.2f} ms per window at batch 1, "
        f"{latency[batch]['median_ms']:.1f} ms per batch of {batch[6:]}",
        highlight=False,
    )
    table = Table()
    for column in ("class", "precision", "recall", "F1", "support", "share"):
        table.add_column(column, justify="left" if column == "class" else "right")
    for row in metrics["per_class"]:
        table.add_row(
            row["class"],
            f"{row['precision']:.3f}",
            f"{row['recall']:.3f}",
            f"{row['f1']:.3f}",
            str(row["support"]),
            f"{row['proportion']:.1%}",
        )
    console.print(table)


@app.command()
def train(
    dataset: Annotated[str, typer.Option(help="Dataset key.")],
    model: Annotated[str, typer.Option(help="Model name (see `harkit models`).")] = "sann",
    out: Annotated[Path | None, typer.Option(help="Run directory [runs/<dataset>-<model>-<time>].")] = None,
    epochs: Annotated[int, typer.Option(help="Epochs.")] = 30,
    batch_size: Annotated[int, typer.Option(help="Batch size.")] = 128,
    lr: Annotated[float, typer.Option(help="Learning rate (AdamW).")] = 5e-4,
    weight_decay: Annotated[float, typer.Option(help="AdamW weight decay.")] = 1e-3,
    patience: Annotated[int, typer.Option(help="Early stopping patience in epochs; 0 turns it off.")] = 10,
    label_smoothing: Annotated[float, typer.Option(help="Label smoothing of the cross-entropy.")] = 0.0,
    class_weights: Annotated[bool, typer.Option(help="Weight classes by inverse frequency.")] = False,
    l1: Annotated[float, typer.Option(help="L1 penalty on weights.")] = 0.0,
    l2: Annotated[float, typer.Option(help="L2 penalty on weights (besides weight decay).")] = 0.0,
    dropout: Annotated[float | None, typer.Option(help="Dropout [model default].")] = None,
    width: Annotated[float | None, typer.Option(help="Width multiplier of convolutional models.")] = None,
    model_option: Annotated[list[str] | None, typer.Option(help="Model option KEY=VALUE, repeatable.")] = None,
    augment: Annotated[str | None, typer.Option(help="e.g. rotation=30,jitter=0.05,scale=0.1,shift=0.1")] = None,
    precision: Annotated[str, typer.Option(help="auto, fp32, fp16 (CUDA) or bf16.")] = "auto",
    device: Annotated[str, typer.Option(help="auto, cpu, cuda, cuda:1 ...")] = "auto",
    compile: Annotated[
        bool,
        typer.Option(help="torch.compile the model: faster epochs after 10-20 s of compiling (SANN on CPU: 1.4x)."),
    ] = False,
    threads: Annotated[int | None, typer.Option(help="CPU threads [all available cores].")] = None,
    seed: Seed = 0,
    data_dir: DataDir = None,
    window: Window = None,
    overlap: Overlap = None,
    split: Split = "default",
    fold: Fold = 0,
    folds: Annotated[str | None, typer.Option(help="Cross-validate: loso or K; one model per fold.")] = None,
    val_fraction: ValFraction = 0.2,
    channels: Channels = None,
    option: Options = None,
    train_subjects: Annotated[str | None, typer.Option(help="Only these subjects train, e.g. 1,3,5.")] = None,
    init_from: Annotated[Path | None, typer.Option(help="Start from the feature weights of this run.")] = None,
    freeze_features: Annotated[bool, typer.Option(help="With --init-from: train the head only.")] = False,
    resume: Annotated[bool, typer.Option(help="Continue an interrupted run in --out.")] = False,
    overwrite: Annotated[bool, typer.Option(help="Replace a run already in --out.")] = False,
    progress: Annotated[bool, typer.Option(help="Show a progress bar.")] = True,
) -> None:
    """Train a model on a dataset, then evaluate it on the test split."""
    import time as _time

    from harkit.datasets import SubjectSplit
    from harkit.training.augment import AugmentConfig
    from harkit.training.engine import TrainConfig
    from harkit.training.engine import train as train_run

    def body():
        options = parse_options(model_option) | {"dropout": dropout, "width": width}
        config = TrainConfig(
            dataset=dataset,
            model=model,
            epochs=epochs,
            batch_size=batch_size,
            lr=lr,
            weight_decay=weight_decay,
            patience=patience or None,
            label_smoothing=label_smoothing,
            class_weights=class_weights,
            l1=l1,
            l2=l2,
            model_options={k: v for k, v in options.items() if v is not None},
            augment=AugmentConfig.parse(augment),
            precision=precision,
            device=device,
            compile=compile,
            init_from=str(init_from) if init_from else None,
            freeze_features=freeze_features,
            train_subjects=tuple(int(s) for s in train_subjects.split(",")) if train_subjects else None,
            threads=threads,
            seed=seed,
            data_dir=str(data_dir) if data_dir else None,
            window=window,
            overlap=overlap,
            split=SubjectSplit.parse(split, fold),
            val_fraction=val_fraction,
            channels=tuple(channels.split(",")) if channels else None,
            dataset_options=parse_options(option),
        )
        run = out or Path("runs") / f"{dataset.replace('/', '_')}-{model}-{_time.strftime('%Y%m%d-%H%M%S')}"
        if folds:
            from harkit.training.crossval import cross_validate

            summary = cross_validate(config, run, folds, resume=resume, overwrite=overwrite, progress=progress)
            print_cross_validation(summary)
        else:
            run = train_run(config, run, resume=resume, overwrite=overwrite, progress=progress)
            if os.environ.get("RANK", "0") != "0":
                return  # under torchrun, the main process reports
            print_metrics(json.loads((run / "metrics.json").read_text()))
        console.print(f"run directory: {run}")

    _run(body)


def print_cross_validation(summary: dict) -> None:
    """One row per fold and the mean and standard deviation of each metric."""
    keys = ("accuracy", "macro_f1", "weighted_f1", "macro_precision", "macro_recall")
    table = Table(title=f"{summary['model']} on {summary['dataset']}, {summary['scheme']} cross-validation")
    table.add_column("fold")
    table.add_column("test subjects")
    for key in keys:
        table.add_column(key, justify="right")
    for row in summary["folds"]:
        table.add_row(str(row["fold"]), " ".join(map(str, row["test_subjects"])), *(f"{row[k]:.4f}" for k in keys))
    table.add_row("mean ± std", "", *(f"{summary['mean'][k]:.4f} ± {summary['std'][k]:.4f}" for k in keys))
    console.print(table)


@app.command()
def evaluate(run: Annotated[Path, typer.Argument(help="Run directory written by `harkit train`.")]) -> None:
    """Evaluate a trained run on its test split: metrics, per-class table, confusion, cost, plots."""
    from harkit.evaluation.evaluate import evaluate_run

    _run(lambda: print_metrics(evaluate_run(run)))


@app.command()
def benchmark(
    datasets: Annotated[str, typer.Option(help="Comma-separated dataset keys.")],
    models: Annotated[str, typer.Option(help="Comma-separated model names.")] = "sann,cnn",
    seeds: Annotated[str, typer.Option(help="Comma-separated seeds.")] = "0",
    out: Annotated[Path, typer.Option(help="Folder for the runs and the report.")] = Path("runs/benchmark"),
    epochs: Annotated[int, typer.Option(help="Epochs per run.")] = 30,
    batch_size: Annotated[int, typer.Option(help="Batch size.")] = 128,
    lr: Annotated[float, typer.Option(help="Learning rate.")] = 5e-4,
    patience: Annotated[int, typer.Option(help="Early stopping patience; 0 turns it off.")] = 10,
    augment: Annotated[str | None, typer.Option(help="Augmentation, as for train.")] = None,
    device: Annotated[str, typer.Option(help="auto, cpu, cuda ...")] = "auto",
    precision: Annotated[str, typer.Option(help="auto, fp32, fp16 or bf16.")] = "auto",
    data_dir: DataDir = None,
    workers: Annotated[int, typer.Option(help="Runs trained in parallel processes.")] = 1,
    progress: Annotated[bool, typer.Option(help="Show progress bars.")] = True,
) -> None:
    """Train every dataset x model x seed (finished runs are skipped), then write the comparison report."""
    from harkit.datasets import get_dataset
    from harkit.models import model_options
    from harkit.training.augment import AugmentConfig
    from harkit.training.engine import TrainConfig
    from harkit.training.grid import run_grid

    def body():
        dataset_list, model_list = datasets.split(","), models.split(",")
        for name in dataset_list:
            get_dataset(name)
        for name in model_list:
            model_options(name)
        base = TrainConfig(
            dataset=dataset_list[0],
            model=model_list[0],
            epochs=epochs,
            batch_size=batch_size,
            lr=lr,
            patience=patience or None,
            augment=AugmentConfig.parse(augment),
            device=device,
            precision=precision,
            data_dir=str(data_dir) if data_dir else None,
        )
        seed_list = [int(s) for s in seeds.split(",")]
        print_report(*run_grid(out, dataset_list, model_list, seed_list, base, workers=workers, progress=progress))

    _run(body)


def print_report(markdown: Path, page: Path) -> None:
    """The Markdown report as text, and where both versions are."""
    console.print(markdown.read_text(), highlight=False, markup=False)
    console.print(f"report: {markdown} and {page}")


@app.command()
def report(out: Annotated[Path, typer.Argument(help="Folder written by `harkit benchmark`.")]) -> None:
    """Rebuild the comparison report from the finished runs in a benchmark folder."""
    from harkit.evaluation.report import write_report

    def body():
        if not out.is_dir():
            raise HarkitError(f"{out} does not exist; run `harkit benchmark --out {out} ...` first")
        print_report(*write_report(out))

    _run(body)


@app.command()
def export(
    run: Annotated[Path, typer.Argument(help="Run directory written by `harkit train`.")],
    format: Annotated[str, typer.Option(help="Export format (onnx).")] = "onnx",
) -> None:
    """Export a trained model (ONNX) with its normalisation and class names, checked against PyTorch."""
    from harkit.export import export_onnx

    def body():
        if format != "onnx":
            raise HarkitError(f"unknown export format {format!r}; harkit exports onnx")
        result = export_onnx(run)
        console.print(
            f"wrote {result['onnx']} and {result['meta']}; largest difference from PyTorch "
            f"{result['max_abs_difference']:.2e}",
            highlight=False,
        )

    _run(body)


@app.command()
def predict(
    run: Annotated[Path, typer.Argument(help="Run directory written by `harkit train`.")],
    recording: Annotated[Path, typer.Argument(help="CSV with one column per channel (and optionally timestamp).")],
    out: Annotated[Path, typer.Option(help="Folder for predictions.csv and timeline.csv.")] = Path("predictions"),
    rate: Annotated[float | None, typer.Option(help="Sampling rate of the recording, if it has no timestamp.")] = None,
    resample: Annotated[bool, typer.Option(help="Resample a recording at another rate to the model's.")] = False,
    fill_gaps: Annotated[bool, typer.Option(help="Interpolate missing values instead of refusing.")] = False,
) -> None:
    """Classify the windows of a new recording and merge them into a timeline of activities."""
    from harkit.predict import predict_recording

    def body():
        result = predict_recording(run, recording, out, rate=rate, resample=resample, fill_gaps=fill_gaps)
        table = Table(title=f"{recording.name}: {len(result['predictions'])} windows ({result['backend']})")
        for column in ("start (s)", "end (s)", "activity", "windows", "confidence"):
            table.add_column(column, justify="left" if column == "activity" else "right")
        for row in result["timeline"].itertuples():
            table.add_row(
                f"{row.start_s:.2f}", f"{row.end_s:.2f}", row.label, str(row.windows), f"{row.mean_confidence:.2f}"
            )
        console.print(table)
        console.print(f"wrote {out / 'predictions.csv'} and {out / 'timeline.csv'}")

    _run(body)


@app.command()
def explain(
    run: Annotated[Path, typer.Argument(help="Run directory of a sann, sann-transformer or sann-lstm model.")],
    out: Annotated[Path, typer.Option(help="Folder for the PNG figures.")] = Path("attention"),
    per_class: Annotated[int, typer.Option(help="Test windows plotted per class.")] = 2,
) -> None:
    """Plot raw test windows with the spatial attention weights of every stage over time."""
    from harkit.explain import explain_run

    def body():
        files = explain_run(run, out, per_class)
        console.print(f"wrote {len(files)} figures to {out}")

    _run(body)


@app.command()
def tune(
    dataset: Annotated[str, typer.Option(help="Dataset key.")],
    model: Annotated[str, typer.Option(help="Model name.")] = "sann",
    trials: Annotated[int, typer.Option(help="Trials to add to the study.")] = 20,
    epochs: Annotated[int, typer.Option(help="Epochs per trial.")] = 10,
    out: Annotated[Path, typer.Option(help="Folder for trials, the study database and the best run.")] = Path(
        "runs/tune"
    ),
    storage: Annotated[str | None, typer.Option(help="Optuna storage URL [sqlite:///OUT/study.db].")] = None,
    study: Annotated[str | None, typer.Option(help="Study name [<dataset>-<model>].")] = None,
    final: Annotated[bool, typer.Option(help="Train and test the best configuration at the end.")] = True,
    data_dir: DataDir = None,
    window: Window = None,
    val_fraction: ValFraction = 0.2,
    device: Annotated[str, typer.Option(help="auto, cpu, cuda ...")] = "auto",
    seed: Seed = 0,
) -> None:
    """Search learning rate, weight decay, batch size, dropout, augmentation and width on the validation split."""
    from harkit.training.engine import TrainConfig
    from harkit.tune import tune as run_tune

    def body():
        base = TrainConfig(
            dataset=dataset,
            model=model,
            epochs=epochs,
            data_dir=str(data_dir) if data_dir else None,
            window=window,
            val_fraction=val_fraction,
            device=device,
            seed=seed,
            patience=None,
        )
        summary = run_tune(base, trials, out, storage=storage, study_name=study, final=final)
        console.print_json(json.dumps(summary))

    _run(body)


if __name__ == "__main__":
    app()
