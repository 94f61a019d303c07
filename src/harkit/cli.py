"""The `harkit` command: a thin layer over the Python API that parses arguments and prints."""

from __future__ import annotations

import json
import logging
import os
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from harkit import HarkitError
from harkit.checks import OptionError, int_list, whole

# Plain help (rich_markup_mode=None): Rich markup would eat bracketed text such as "[env HARKIT_DATA_DIR]", and its
# option table squeezes descriptions into a narrow column at 80 columns.
app = typer.Typer(
    help="Human Activity Recognition from wearable sensors.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)
console = Console()

DataDir = Annotated[Path | None, typer.Option(help="Folder with archives or extracted trees [env HARKIT_DATA_DIR].")]
CacheDir = Annotated[Path | None, typer.Option(help="Folder for extracted archives and prepared arrays.")]
Options = Annotated[list[str] | None, typer.Option("--option", help="Dataset reader option KEY=VALUE, repeatable.")]
Threads = Annotated[int | None, typer.Option(help="CPU threads [all available cores].")]


def use_threads(threads: int | None) -> None:
    """Run this command's PyTorch work on `threads` CPU threads (a shared machine, runs side by side)."""
    whole("threads", threads, 1, optional=True)
    if threads is not None:
        import torch

        torch.set_num_threads(threads)


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


def _number_or_auto(name: str, text: str) -> float | str:
    """`auto`, or the number a flag's text holds."""
    if text.strip().lower() == "auto":
        return "auto"
    try:
        return float(text)
    except ValueError:
        raise OptionError(name, f"must be a number or auto, got {text!r}") from None


def say(line: str) -> None:
    """A progress line of a long command (which fold or run, x of N, time left)."""
    console.print(line, highlight=False, markup=False)


def _run(action):
    """Run a command body; a HarkitError becomes a one-line message and exit code 2."""
    from rich.markup import escape

    try:
        return action()
    except HarkitError as error:
        message = error.as_flag() if isinstance(error, OptionError) else str(error)  # name the flag the user typed
        console.print(f"[bold red]error:[/] {escape(message)}", highlight=False, emoji=False)
        raise typer.Exit(2) from None


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever `sys.stderr` is now, so a CLI called again in one process never logs to a closed stream."""

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, value) -> None:
        pass


@app.callback()
def main(verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log what happens.")] = False) -> None:
    """Human Activity Recognition from wearable sensors."""
    root = logging.getLogger()
    if not any(isinstance(handler, _StderrHandler) for handler in root.handlers):
        handler = _StderrHandler()
        handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
        root.addHandler(handler)
    root.setLevel(logging.INFO if verbose else logging.WARNING)
    logging.getLogger("harkit.datasets.pipeline").setLevel(logging.INFO)  # which subjects train, validate, test
    logging.getLogger("harkit.choices").setLevel(logging.INFO)  # the model and validation `auto` chose


@app.command()
def datasets(
    describe: Annotated[Path | None, typer.Option(help="Show what harkit understands of a folder dataset.")] = None,
    template: Annotated[Path | None, typer.Option(help="Write a harkit.toml and example recordings here.")] = None,
    example: Annotated[
        Path | None, typer.Option(help="Write the example recording shipped with the pretrained model (CSV).")
    ] = None,
) -> None:
    """List the datasets with their facts, describe a folder of recordings, or start one from a template."""
    from harkit.datasets import get_dataset, list_datasets
    from harkit.datasets.folder import write_template

    def body():
        if example is not None:
            write_example(example)
            return
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
        console.print(
            "Any folder with a harkit.toml is a dataset too (harkit datasets --template DIR), and so are a folder "
            "with a UEA/UCR pair NAME_TRAIN.ts / NAME_TEST.ts and an .npz of windows: give their path"
        )

    _run(body)


def write_example(path: Path) -> None:
    """Write the pretrained model's example recording (into `path`, or as `path/example.csv` for a folder)."""
    from harkit.pretrained import PRETRAINED_NAMES, example_recording

    written = example_recording(path)  # refuses to overwrite a file
    with open(written) as handle:
        labelled = "activity" in handle.readline().strip().split(",")
    score = " --label-column activity" if labelled else ""
    console.print(f"wrote {written}", highlight=False)
    console.print(
        f"next: harkit predict --pretrained {PRETRAINED_NAMES[0]} {written} --out pred{score}", highlight=False
    )


def print_description(facts: dict) -> None:
    """What harkit understood of a folder dataset."""
    default = " (the default: harkit.toml sets no window)" if facts.get("window_is_default") else ""
    console.print(
        f"[bold]{facts['folder']}[/]: {facts['recordings']} recordings, "
        + (f"{len(facts['subjects'])} subjects, " if facts["subjects"] else "")
        + f"{facts['sampling_rate']:g} Hz, window {facts['window']}{default} ({facts['overlap']:.0%} overlap)",
        highlight=False,
    )
    split = facts.get("split", {"kind": "subject"})
    held_out = {
        "time": f"the last {split.get('test_fraction', 0):g} of every recording (split in time)",
        "published": split.get("text", ""),
    }.get(split["kind"], str(facts["test_subjects"]))
    subjects = ", ".join(f"{k} ({v})" if str(k) != v else str(k) for k, v in facts["subjects"].items())
    console.print(
        (f"subjects: {subjects}; " if subjects else "") + f"held out for testing by default: {held_out}",
        highlight=False,
    )
    if facts.get("unlabelled_recordings"):
        names = facts["unlabelled_recordings"]
        console.print(
            f"{len(names)} recordings without labels (not trained on; predict can label them): "
            + ", ".join(names[:10])
            + (" ..." if len(names) > 10 else ""),
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
TrainValFraction = Annotated[
    str,
    typer.Option(
        "--val-fraction",
        help="Fraction of training subjects kept for validation; auto: 0.2 where the run selects on validation "
        "(the best epoch, early stopping), none where it selects nothing.",
    ),
]
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
    no_download: Annotated[
        bool, typer.Option("--no-download", help="Never download; fail if the data is not found.")
    ] = False,
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
            # A folder dataset learns its classes from its recordings unless harkit.toml lists them.
            names = facts.classes or list(facts.describe_recordings()["classes"])
            if not names:
                raise HarkitError(f"{dataset} has no labelled recordings, so no classes to size the models for")
            window, channels, classes = facts.window, len(facts.channels), len(names)
        from harkit.training.recipe import AUTO_MODEL_WINDOWS

        table = Table(
            title=f"models for windows of {window} x {channels}, {classes} classes",
            caption=f"harkit train --model auto (the default): minirocket below {AUTO_MODEL_WINDOWS:,} training "
            "windows, sann from there",
        )
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
    console.print(
        f"[bold]{metrics['model']}[/] on [bold]{metrics['dataset']}[/] ({metrics['samples']} test windows): "
        f"accuracy {metrics['accuracy']:.4f}  macro F1 {metrics['macro_f1']:.4f}  "
        f"macro precision {metrics['macro_precision']:.4f}  macro recall {metrics['macro_recall']:.4f}  "
        f"weighted F1 {metrics['weighted_f1']:.4f}",
        highlight=False,
    )
    from harkit.evaluation.cost import describe_latency

    console.print(
        f"{metrics['parameters']:,} parameters, {metrics['macs_per_window']:,} MACs per window; "
        f"{describe_latency(latency)}",
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
    if "refit" in metrics:
        refit = metrics["refit"]
        console.print(
            f"refit on all {len(refit['train_subjects'])} training subjects for {refit['epochs']} epochs: "
            f"accuracy {refit['accuracy']:.4f}  macro F1 {refit['macro_f1']:.4f} (the run: {refit['run']}/)",
            highlight=False,
        )


@app.command()
def train(
    dataset: Annotated[str, typer.Option(help="Dataset key.")],
    model: Annotated[
        str,
        typer.Option(
            help="Model name, or auto: MiniRocket on small data, SANN on large (`harkit models` says where the "
            "line is)."
        ),
    ] = "auto",
    out: Annotated[Path | None, typer.Option(help="Run directory [runs/<dataset>-<model>-<time>].")] = None,
    recipe: Annotated[
        str, typer.Option(help="harkit (sized from the data) or article (the SANN article's, exactly).")
    ] = "harkit",
    epochs: Annotated[int | None, typer.Option(help="Epochs [recipe: from the training windows].")] = None,
    batch_size: Annotated[int | None, typer.Option(help="Batch size [recipe: from the training windows].")] = None,
    lr: Annotated[float | None, typer.Option(help="Peak learning rate of AdamW [recipe].")] = None,
    weight_decay: Annotated[float | None, typer.Option(help="AdamW weight decay, on weights only [recipe].")] = None,
    schedule: Annotated[str | None, typer.Option(help="cosine (after warm-up), step or constant [recipe].")] = None,
    patience: Annotated[
        int | None, typer.Option(help="Early stopping patience in epochs; 0 turns it off [recipe].")
    ] = None,
    label_smoothing: Annotated[
        float | None, typer.Option(help="Label smoothing of the cross-entropy [recipe].")
    ] = None,
    class_weights: Annotated[bool, typer.Option(help="Weight classes by inverse frequency.")] = False,
    l1: Annotated[float, typer.Option(help="L1 penalty on weights.")] = 0.0,
    l2: Annotated[float, typer.Option(help="L2 penalty on weights (besides weight decay).")] = 0.0,
    dropout: Annotated[float | None, typer.Option(help="Dropout [model default].")] = None,
    width: Annotated[float | None, typer.Option(help="Width multiplier of convolutional models.")] = None,
    model_option: Annotated[list[str] | None, typer.Option(help="Model option KEY=VALUE, repeatable.")] = None,
    augment: Annotated[str | None, typer.Option(help="e.g. rotation=30,jitter=0.05,scale=0.1; none [recipe]")] = None,
    precision: Annotated[
        str, typer.Option(help="auto (measured on this machine, see `harkit doctor`), fp32, fp16 (CUDA) or bf16.")
    ] = "auto",
    device: Annotated[str, typer.Option(help="auto, cpu, cuda, cuda:1 ...")] = "auto",
    compile: Annotated[
        bool | None,
        typer.Option(
            "--compile/--no-compile",
            help="torch.compile the model (10-20 s or more of compiling, then faster or slower epochs depending on "
            "the CPU). Neither: auto, where this machine's measured compile time pays off over the run "
            "(see `harkit doctor`).",
        ),
    ] = None,
    threads: Threads = None,
    seed: Seed = 0,
    data_dir: DataDir = None,
    window: Window = None,
    overlap: Overlap = None,
    split: Split = "default",
    fold: Fold = 0,
    folds: Annotated[str | None, typer.Option(help="Cross-validate: loso or K; one model per fold.")] = None,
    only: Annotated[
        str | None, typer.Option(help="With --folds: train only these folds (from 0), e.g. 1,2,5 or 0-3.")
    ] = None,
    ray: Annotated[
        bool,
        typer.Option(
            help="With --folds: each fold a Ray task (--threads each, default 1), on a local Ray instance or the "
            "cluster RAY_ADDRESS names."
        ),
    ] = False,
    val_fraction: TrainValFraction = "auto",
    channels: Channels = None,
    option: Options = None,
    train_subjects: Annotated[str | None, typer.Option(help="Only these subjects train, e.g. 1,3,5.")] = None,
    init_from: Annotated[Path | None, typer.Option(help="Start from the feature weights of this run.")] = None,
    freeze_features: Annotated[bool, typer.Option(help="With --init-from: train the head only.")] = False,
    keep: Annotated[
        str,
        typer.Option(
            help="The model kept: best (on validation macro F1) or last (the final epoch's) [recipe: last from "
            "1,000 training windows, else best]."
        ),
    ] = "auto",
    refit: Annotated[
        bool,
        typer.Option(
            help="Then train again on all training subjects, validation included, for the best epoch count; "
            "both test scores are shown (the refit is in RUN/refit)."
        ),
    ] = False,
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
            recipe=recipe,
            epochs=epochs,
            batch_size=batch_size,
            lr=lr,
            weight_decay=weight_decay,
            schedule=schedule,
            patience="auto" if patience is None else patience or None,
            label_smoothing=label_smoothing,
            class_weights=class_weights,
            l1=l1,
            l2=l2,
            model_options={k: v for k, v in options.items() if v is not None},
            augment=AugmentConfig.parse(augment) if augment is not None else None,
            precision=precision,
            device=device,
            compile="auto" if compile is None else compile,
            init_from=str(init_from) if init_from else None,
            freeze_features=freeze_features,
            keep=keep,
            refit=refit,
            train_subjects=int_list("train_subjects", train_subjects, "subject number") if train_subjects else None,
            threads=threads,
            seed=seed,
            data_dir=str(data_dir) if data_dir else None,
            window=window,
            overlap=overlap,
            split=SubjectSplit.parse(split, fold),
            val_fraction=_number_or_auto("val_fraction", val_fraction),
            channels=tuple(channels.split(",")) if channels else None,
            dataset_options=parse_options(option),
        )
        run = out or Path("runs") / f"{dataset.replace('/', '_')}-{model}-{_time.strftime('%Y%m%d-%H%M%S')}"
        if only and not folds:
            raise HarkitError("--only picks folds of a cross-validation; add --folds loso (or --folds K)")
        if ray and not folds:
            raise HarkitError(
                "--ray runs the folds of a cross-validation as Ray tasks; add --folds loso (or --folds K)"
            )
        if folds:
            from harkit.training.crossval import cross_validate, parse_folds

            summary = cross_validate(
                config,
                run,
                folds,
                resume=resume,
                overwrite=overwrite,
                progress=progress,
                only=parse_folds(only),
                say=say,
                ray=ray,
            )
            print_cross_validation(summary)
        else:
            run = train_run(config, run, resume=resume, overwrite=overwrite, progress=progress)
            if os.environ.get("RANK", "0") != "0":
                return  # under torchrun, the main process reports
            print_metrics(json.loads((run / "metrics.json").read_text()))
            print_next_steps(run, dataset)
            return
        console.print(f"run directory: {run}")

    _run(body)


def print_next_steps(run: Path, dataset: str) -> None:
    """Where a finished run is, the figures it holds, and three commands to go on with."""
    plots = sorted((run / "plots").glob("*.png")) if (run / "plots").is_dir() else []
    console.print(f"[bold]run folder:[/] {run}", highlight=False)
    if plots:
        console.print(f"plots: {', '.join(str(p) for p in plots)}", highlight=False)
    if (run / "report.html").is_file():
        console.print(f"report: {run / 'report.html'}", highlight=False)
    console.print("next:", highlight=False)
    for command, what in (
        (f"harkit evaluate {run}", "metrics, tables and plots again"),
        (f"harkit export {run} --format onnx", f"an ONNX model; then harkit predict {run} RECORDING.csv"),
        (f"harkit benchmark --datasets {dataset} --models sann,cnn --seeds 0,1,2", "compare models over seeds"),
    ):
        console.print(f"  {command:<58} # {what}", highlight=False, markup=False, soft_wrap=True)


def print_cross_validation(summary: dict) -> None:
    """One row per fold and the mean and standard deviation of each metric."""
    keys = ("accuracy", "macro_f1", "weighted_f1", "macro_precision", "macro_recall")
    covered = (
        f"all {summary['total_folds']} folds"
        if summary.get("complete", True)
        else f"folds {', '.join(map(str, summary['covered_folds']))} of {summary['total_folds']} (a subset)"
    )
    table = Table(title=f"{summary['model']} on {summary['dataset']}, {summary['scheme']} cross-validation, {covered}")
    table.add_column("fold")
    table.add_column("test subjects")
    for key in keys:
        table.add_column(key, justify="right")
    for row in summary["folds"]:
        table.add_row(str(row["fold"]), " ".join(map(str, row["test_subjects"])), *(f"{row[k]:.4f}" for k in keys))
    table.add_row("mean ± std", "", *(f"{summary['mean'][k]:.4f} ± {summary['std'][k]:.4f}" for k in keys))
    console.print(table)


@app.command()
def evaluate(
    run: Annotated[Path, typer.Argument(help="Run directory written by `harkit train` (or its --folds folder).")],
    data_dir: Annotated[Path | None, typer.Option(help="Where the run's data is now, if it moved.")] = None,
    threads: Threads = None,
) -> None:
    """Evaluate a trained run on its test split: metrics, per-class table, confusion, cost, plots."""
    from harkit.evaluation.evaluate import evaluate_folds, evaluate_run
    from harkit.runs import fold_dirs

    def body():
        use_threads(threads)
        if not (run / "config.json").is_file() and fold_dirs(run):
            print_cross_validation(evaluate_folds(run, data_dir=data_dir))
        else:
            print_metrics(evaluate_run(run, data_dir=data_dir))

    _run(body)


@app.command()
def ensemble(
    runs: Annotated[list[Path], typer.Argument(help="Two or more run directories of one dataset and split.")],
    out: Annotated[Path | None, typer.Option(help="Folder for metrics.json, tables and the confusion plot.")] = None,
    data_dir: Annotated[Path | None, typer.Option(help="Where the runs' data is now, if it moved.")] = None,
    threads: Threads = None,
) -> None:
    """Score several runs as one model: their class probabilities averaged on the same test windows."""
    from harkit.evaluation.ensemble import evaluate_ensemble

    def body():
        use_threads(threads)
        metrics = evaluate_ensemble(runs, out, data_dir=data_dir)
        table = Table()
        for column in ("run", "model", "accuracy", "macro F1"):
            table.add_column(column, justify="left" if column in ("run", "model") else "right")
        for member in metrics["members"]:
            table.add_row(member["run"], member["model"], f"{member['accuracy']:.4f}", f"{member['macro_f1']:.4f}")
        table.add_row("ensemble", "", f"{metrics['accuracy']:.4f}", f"{metrics['macro_f1']:.4f}")
        console.print(table)
        if out is not None:
            console.print(f"written to {out}", highlight=False)

    _run(body)


@app.command()
def benchmark(
    datasets: Annotated[str, typer.Option(help="Comma-separated dataset keys.")],
    models: Annotated[
        str, typer.Option(help="Comma-separated model names; keep minirocket, the baseline the report compares with.")
    ] = "sann,cnn,minirocket",
    seeds: Annotated[str, typer.Option(help="Comma-separated seeds.")] = "0",
    out: Annotated[Path, typer.Option(help="Folder for the runs and the report.")] = Path("runs/benchmark"),
    recipe: Annotated[str, typer.Option(help="harkit or article, as for train.")] = "harkit",
    epochs: Annotated[int | None, typer.Option(help="Epochs per run [recipe].")] = None,
    batch_size: Annotated[int | None, typer.Option(help="Batch size [recipe].")] = None,
    lr: Annotated[float | None, typer.Option(help="Learning rate [recipe].")] = None,
    patience: Annotated[int | None, typer.Option(help="Early stopping patience; 0 turns it off [recipe].")] = None,
    augment: Annotated[str | None, typer.Option(help="Augmentation, as for train.")] = None,
    device: Annotated[str, typer.Option(help="auto, cpu, cuda ...")] = "auto",
    precision: Annotated[str, typer.Option(help="auto, fp32, fp16 or bf16.")] = "auto",
    data_dir: DataDir = None,
    workers: Annotated[int, typer.Option(help="Runs trained in parallel processes.")] = 1,
    progress: Annotated[bool, typer.Option(help="Show progress bars.")] = True,
    ray: Annotated[
        bool, typer.Option(help="Each run a Ray task: a local Ray instance, or the cluster RAY_ADDRESS names.")
    ] = False,
    threads: Annotated[
        int | None, typer.Option(min=1, help="CPU threads per run [cores / workers; with --ray: 1 per task].")
    ] = None,
) -> None:
    """Train every dataset x model x seed (finished runs are skipped), then write the comparison report."""
    from harkit.datasets import get_dataset
    from harkit.models import model_options
    from harkit.training.augment import AugmentConfig
    from harkit.training.engine import TrainConfig
    from harkit.training.grid import run_grid

    def body():
        whole("workers", workers, 1)
        dataset_list, model_list = datasets.split(","), models.split(",")
        for name in dataset_list:
            get_dataset(name)
        for name in model_list:
            model_options(name)
        base = TrainConfig(
            dataset=dataset_list[0],
            model=model_list[0],
            recipe=recipe,
            epochs=epochs,
            batch_size=batch_size,
            lr=lr,
            patience="auto" if patience is None else patience or None,
            augment=AugmentConfig.parse(augment) if augment is not None else None,
            device=device,
            precision=precision,
            threads=threads,
            data_dir=str(data_dir) if data_dir else None,
        )
        seed_list = list(int_list("seeds", seeds))
        print_report(
            *run_grid(
                out, dataset_list, model_list, seed_list, base, workers=workers, progress=progress, say=say, ray=ray
            )
        )

    _run(body)


def print_report(markdown: Path, page: Path) -> None:
    """The report's tables as Rich tables, its attention verdicts, and where the full report is."""
    from harkit.evaluation.report import markdown_tables

    text = markdown.read_text()
    for heading, (header, *rows) in markdown_tables(text):
        table = Table(title=heading, title_justify="left")
        for index, column in enumerate(header):
            table.add_column(column, justify="left" if index < 2 or heading.startswith("Runs") else "right")
        for row in rows:
            table.add_row(*row)
        console.print(table)
    for line in text.splitlines():
        if line.startswith("- "):  # the SANN against CNN verdicts
            console.print(line, highlight=False, markup=False)
    console.print(f"report with figures and learning curves: {page} (and {markdown})", highlight=False)


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
    run: Annotated[Path, typer.Argument(help="Run directory written by `harkit train` (with --pretrained: omit).")],
    recording: Annotated[
        Path | None, typer.Argument(help="CSV with one column per channel (and optionally timestamp).")
    ] = None,
    out: Annotated[Path, typer.Option(help="Folder for the predictions, timeline and plot.")] = Path("predictions"),
    pretrained: Annotated[
        str | None, typer.Option(help="Predict with a pretrained model shipped with harkit (hapt-tiny).")
    ] = None,
    rate: Annotated[
        float | None, typer.Option(help="Sampling rate of a recording without timestamps [default: the model's].")
    ] = None,
    resample: Annotated[bool, typer.Option(help="Resample a recording at another rate to the model's.")] = False,
    fill_gaps: Annotated[bool, typer.Option(help="Interpolate missing values instead of refusing.")] = False,
    label_column: Annotated[
        str | None, typer.Option(help="Column with the true activity: score the prediction (metrics.json).")
    ] = None,
    smooth: Annotated[
        float | None, typer.Option(help="Minimum segment duration in seconds; shorter ones merge into a neighbour.")
    ] = None,
    timestamp_unit: Annotated[
        str | None,
        typer.Option(help="Timestamps are epoch numbers in s, ms, us or ns [the run's harkit.toml, else s]."),
    ] = None,
    threads: Threads = None,
) -> None:
    """Label every sample of a new recording (overlapping windows averaged) and merge them into a timeline."""
    from harkit.predict import predict_recording

    def body():
        use_threads(threads)
        source, csv = (None, run) if pretrained is not None else (run, recording)
        if pretrained is not None and recording is not None:
            raise HarkitError("with --pretrained NAME give only the recording: harkit predict --pretrained NAME FILE")
        if csv is None:
            raise HarkitError("give the run directory and the recording: harkit predict RUN FILE")
        result = predict_recording(
            source,
            csv,
            out,
            rate=rate,
            resample=resample,
            fill_gaps=fill_gaps,
            label_column=label_column,
            smooth=smooth,
            pretrained=pretrained,
            timestamp_unit=timestamp_unit,
        )
        print_prediction(csv, result)

    _run(body)


def print_prediction(recording: Path, result: dict, rows: int = 30) -> None:
    """The timeline of a prediction, what the user should know about it, its score and its files."""
    segments = result["timeline"]
    console.print(f"model: {result['predictor']}", highlight=False)
    table = Table(
        title=f"{recording.name}: {len(result['samples'])} samples, {len(result['predictions'])} windows "
        f"({result['backend']})"
    )
    for column in ("start (s)", "end (s)", "activity", "duration (s)", "confidence"):
        table.add_column(column, justify="left" if column == "activity" else "right")
    for row in segments.head(rows).itertuples():
        table.add_row(
            f"{row.start_s:.2f}", f"{row.end_s:.2f}", row.label, f"{row.duration_s:.2f}", f"{row.mean_confidence:.2f}"
        )
    console.print(table)
    if len(segments) > rows:
        console.print(f"... {len(segments) - rows} more segments in timeline.csv", highlight=False)
    for note in result["notes"]:
        console.print(f"[yellow]note:[/] {note}", highlight=False)
    metrics = result["metrics"]
    if metrics is not None:
        console.print(
            f"accuracy {metrics['accuracy']:.3f}, macro F1 {metrics['macro_f1']:.3f} on "
            f"{metrics['samples_scored']} labelled samples",
            highlight=False,
        )
    if result["files"]:
        folder = result["files"][0].parent
        console.print(f"wrote in {folder}: {', '.join(path.name for path in result['files'])}", highlight=False)


@app.command()
def explain(
    run: Annotated[Path, typer.Argument(help="Run directory of a sann, sann-transformer or sann-lstm model.")],
    out: Annotated[Path, typer.Option(help="Folder for the PNG figures.")] = Path("attention"),
    per_class: Annotated[int, typer.Option(help="Test windows plotted per class.")] = 2,
    data_dir: Annotated[Path | None, typer.Option(help="Where the run's data is now, if it moved.")] = None,
) -> None:
    """Plot raw test windows with the spatial attention weights of every stage over time."""
    from harkit.explain import explain_run
    from harkit.runs import Run

    def body():
        files = explain_run(run, out, per_class, data_dir=data_dir)
        console.print(f"wrote {len(files)} figures of the {Run(run).model_name} model's attention to {out}")

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
        whole("trials", trials, 1)
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


@app.command()
def runs(
    paths: Annotated[
        list[Path] | None,
        typer.Argument(help="A folder to list the runs under [runs], or two or more run folders to compare."),
    ] = None,
) -> None:
    """List the runs under a folder (dataset, model, seed, accuracy, macro F1, date, status), or compare runs."""
    from harkit.evaluation.runlist import compare, find_runs, summary_row
    from harkit.runs import Run

    def body():
        targets = paths or [Path("runs")]
        if len(targets) == 1:
            root = targets[0]
            found = find_runs(root)
            if not found:
                raise HarkitError(f"no runs under {root}; train one: harkit train --dataset hapt --out {root}/NAME")
            plural = "run" if len(found) == 1 else "runs"
            table = Table(title=f"{len(found)} {plural} under {root}", title_justify="left")
            rows = [summary_row(run, root) for run in found]
            for column in rows[0]:
                justify = "right" if column in ("seed", "accuracy", "macro F1") else "left"
                table.add_column(column, justify=justify, overflow="fold", no_wrap=column != "run")
            for row in rows:
                table.add_row(*row.values())
            console.print(table)
            if len(found) > 1:
                console.print(f"side by side: harkit runs {found[0].path} {found[1].path}", highlight=False)
            return
        opened = [Run(path) for path in targets]
        table = Table(title="runs side by side (* differs)", title_justify="left")
        table.add_column("")
        for path in targets:
            table.add_column(str(path), overflow="fold")
        for name, values, differs in compare(opened):
            table.add_row(f"{name} *" if differs else name, *values)
        console.print(table)

    _run(body)


config_app = typer.Typer(
    help="Saved settings: the data folder the commands read when --data-dir is not given.",
    no_args_is_help=True,
    rich_markup_mode=None,
)
app.add_typer(config_app, name="config")


@config_app.command("set")
def config_set(
    key: Annotated[str, typer.Argument(help="data-dir or cache-dir.")],
    value: Annotated[Path, typer.Argument(help="The folder (saved as an absolute path).")],
) -> None:
    """Save a setting: harkit config set data-dir ../shared/datasets."""
    from harkit import userconfig

    def body():
        path = userconfig.set_value(key, str(value))
        console.print(f"{key} = {userconfig.load()[key]}  (saved in {path})", highlight=False)

    _run(body)


@config_app.command("unset")
def config_unset(key: Annotated[str, typer.Argument(help="data-dir or cache-dir.")]) -> None:
    """Remove a setting."""
    from harkit import userconfig

    _run(lambda: console.print(f"removed {key} from {userconfig.unset_value(key)}", highlight=False))


@config_app.command("show")
def config_show() -> None:
    """Show the config file, its settings, and the data and cache folders the commands will use."""
    from harkit import userconfig
    from harkit.datasets import default_cache_dir

    def body():
        path = userconfig.config_path()
        console.print(f"config file: {path}{'' if path.is_file() else ' (not written yet)'}", highlight=False)
        for key, value in userconfig.load().items():
            console.print(f"  {key} = {value}", highlight=False)
        data_dir, source = userconfig.resolve_data_dir()
        if data_dir is None:
            from harkit.datasets import default_data_dir

            data_dir = default_data_dir()
        console.print(f"data folder: {data_dir}  (from {source}; --data-dir overrides it)", highlight=False)
        console.print(f"cache folder: {default_cache_dir()}", highlight=False)

    _run(body)


@app.command()
def doctor(
    device: Annotated[str, typer.Option(help="auto, cpu, cuda ...")] = "auto",
    steps: Annotated[
        int, typer.Option(min=1, help="Training steps of the run to decide compile for (HAPT, 30 epochs: 1800).")
    ] = 1800,
    batch_size: Annotated[int, typer.Option(min=1, help="Batch size of that run.")] = 128,
    fresh: Annotated[bool, typer.Option(help="Measure again instead of using the cached probe.")] = False,
) -> None:
    """This machine's facts, measured speed, and what --precision auto and --compile auto choose, and why."""
    from rich.markup import escape

    from harkit.hardware import doctor as diagnose
    from harkit.hardware import facts_lines

    def body():
        facts = diagnose(device, steps, batch_size, fresh)
        for line in facts_lines(facts["machine"], facts["gflops"]):
            console.print(line, highlight=False)
        probe = facts["probe"]
        if probe is not None:
            table = Table(title=f"probe: SANN training step, batch 128 (cached in {facts['probe_path']})")
            for column in ("", "step ms", "synthetic accuracy"):
                table.add_column(column, justify="left" if not column else "right")
            for name in ("fp32", "bf16"):
                step, accuracy = getattr(probe, f"{name}_step_ms"), getattr(probe, f"{name}_accuracy")
                if step is not None:
                    table.add_row(name, f"{step:.1f}", "" if accuracy is None else f"{accuracy:.3f}")
            if probe.compiled_step_ms is not None:
                table.add_row(
                    f"{probe.compile_precision} compiled ({probe.compile_seconds:.0f} s to compile)",
                    f"{probe.compiled_step_ms:.1f}",
                    "",
                )
            console.print(table)
        if facts["probe_warning"]:
            console.print(f"[yellow]warning:[/] {escape(facts['probe_warning'])}", highlight=False)
        console.print(f"--precision auto: {facts['precision'].value} ({facts['precision'].reason})", highlight=False)
        chosen = "on" if facts["compile"].value else "off"
        console.print(
            f"--compile auto for {facts['steps']} steps: {chosen} ({facts['compile'].reason})", highlight=False
        )

    _run(body)


if __name__ == "__main__":
    app()
