"""The `harkit` command: a thin layer over the Python API that parses arguments and prints."""

from __future__ import annotations

import json
import logging
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
def datasets() -> None:
    """List the datasets with their facts."""
    from harkit.datasets import get_dataset, list_datasets

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


if __name__ == "__main__":
    app()
