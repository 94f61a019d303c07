"""The training engine: one loop, read top to bottom.

Arrays in, run directory out. The engine never looks at which dataset the arrays came from; a run
directory holds everything downstream steps need: `config.json`, `history.csv`, `best.pt` (the
model with the best validation macro F1), `last.pt` (everything needed to resume) and `metrics.json`.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import logging
import math
import os
import random
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from torch import nn

from harkit import HarkitError, checks
from harkit.datasets import PrepareConfig, Prepared, SubjectSplit, prepare, sensor_groups
from harkit.evaluation.metrics import macro_f1
from harkit.hardware import pick_device
from harkit.models import count_parameters, create_model, model_options
from harkit.runs import LOCK_FILE, Run, predict_logits, record_source, run_lock
from harkit.training import recipe as recipe_module
from harkit.training.augment import AugmentConfig, Augmenter, rotation_devices
from harkit.training.checkpoint import remove_staging, save_checkpoint, write_text_whole
from harkit.training.closed_form import fit_closed_form, is_closed_form

log = logging.getLogger(__name__)
# What `auto` chose about the model and the data: the command line shows it without --verbose.
choices = logging.getLogger("harkit.choices")
HISTORY_FIELDS = [
    "epoch",
    "train_loss",
    "train_accuracy",
    "val_loss",
    "val_accuracy",
    "val_macro_f1",
    "lr",
    "seconds",
    "train_seconds",
]


@dataclass
class TrainConfig:
    """Everything a training run depends on; written to `config.json` in the run directory."""

    dataset: str
    model: str = "auto"  # a registered name, or auto: MiniRocket on small data, SANN on large (recipe.auto_model)
    # None: the recipe sets it from the data (see harkit.training.recipe); a value always wins.
    recipe: str = "harkit"  # harkit | article (the SANN article's recipe exactly)
    epochs: int | None = None
    batch_size: int | None = None
    lr: float | None = None
    weight_decay: float | None = None
    schedule: str | None = None  # cosine (per step, after warm-up) | step (StepLR) | constant
    warmup: float | None = None  # fraction of the training steps with a linear warm-up
    step_size: int | None = None  # StepLR step; None means epochs // 3
    gamma: float = 0.5
    patience: int | str | None = "auto"  # early stopping on validation macro F1; None or 0 turns it off
    label_smoothing: float | None = None
    bn_recalibrate: bool | None = None  # re-estimate BatchNorm statistics on training windows before validation
    class_weights: bool = False
    l1: float = 0.0
    l2: float = 0.0
    model_options: dict = field(default_factory=dict)
    augment: AugmentConfig | None = None  # None: the recipe's
    precision: str = "auto"  # auto | fp32 | fp16 | bf16
    # torch.compile the training step's model: True, False, or "auto" (where this machine's measured compile
    # time is won back over the run's steps; harkit/hardware.py)
    compile: bool | str = "auto"
    init_from: str | None = None  # a run directory whose feature weights start this model
    freeze_features: bool = False
    # The model a run keeps: `best` on validation macro F1, `last` (the final epoch's: a schedule run to its end,
    # selected on nothing; validation is still scored and logged), or `auto` (the recipe's, from the data).
    keep: str = "auto"
    # After training, train again on all training subjects (validation included) for the best epoch count
    # validation chose, into `refit/` inside the run; both test scores are reported.
    refit: bool = False
    device: str = "auto"
    threads: int | None = None
    seed: int = 0
    # data
    data_dir: str | None = None
    window: int | None = None
    overlap: float | None = None
    split: SubjectSplit = field(default_factory=SubjectSplit)
    # The share of training subjects that validates; `auto`: 0.2 where the run selects on validation (the best
    # epoch, early stopping), none where it selects nothing on it (recipe.selects_on_validation).
    val_fraction: float | str = "auto"
    channels: tuple[str, ...] | None = None
    train_subjects: tuple[int, ...] | None = None
    dataset_options: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        # Every range is checked here, before any data is read (see harkit.checks); None means "the recipe's".
        checks.whole("epochs", self.epochs, 1, optional=True)
        checks.whole("batch_size", self.batch_size, 1, optional=True)
        checks.positive("lr", self.lr, optional=True)
        checks.at_least_zero("weight_decay", self.weight_decay, optional=True)
        checks.fraction("warmup", self.warmup, optional=True)
        checks.whole("step_size", self.step_size, 1, optional=True)
        checks.positive("gamma", self.gamma)
        if self.patience not in (None, "auto"):
            checks.whole("patience", self.patience, 0)
        checks.fraction("label_smoothing", self.label_smoothing, optional=True)
        checks.at_least_zero("l1", self.l1)
        checks.at_least_zero("l2", self.l2)
        checks.whole("threads", self.threads, 1, optional=True)
        if self.val_fraction != "auto":
            checks.fraction("val_fraction", self.val_fraction, hint=", or auto")
        if self.recipe not in recipe_module.RECIPES:
            raise HarkitError(f"unknown recipe {self.recipe!r}; use {' or '.join(recipe_module.RECIPES)}")
        if self.schedule is not None and self.schedule not in recipe_module.SCHEDULES:
            raise HarkitError(f"unknown schedule {self.schedule!r}; use {', '.join(recipe_module.SCHEDULES)}")
        if self.keep not in ("auto", "best", "last"):
            raise HarkitError(f"unknown --keep {self.keep!r}; use auto, best (on validation) or last (the final epoch)")
        if self.precision not in ("auto", "fp32", "fp16", "bf16"):
            raise HarkitError(f"unknown precision {self.precision!r}; use auto, fp32, fp16 or bf16")
        from harkit.hardware import compile_setting

        self.compile = compile_setting(self.compile)  # True, False or "auto"; "true"/"off" from files too
        self.prepare_config()  # window, overlap, val_fraction, seed, channels, train subjects

    def prepare_config(self) -> PrepareConfig:
        """The data preparation of this run; with `val_fraction` auto, before validation is decided (none)."""
        return PrepareConfig(
            self.window,
            self.overlap,
            self.split,
            0.0 if self.val_fraction == "auto" else self.val_fraction,
            self.channels,
            True,
            self.seed,
            self.train_subjects,
        )

    def to_json(self) -> dict:
        return json.loads(json.dumps(asdict(self), default=list))

    @classmethod
    def from_json(cls, data: dict) -> TrainConfig:
        data = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        data.setdefault("recipe", "article")  # a run from before recipes trained with the article's
        split = data.pop("split")
        split["test_subjects"] = tuple(split["test_subjects"])
        data["split"] = SubjectSplit(**split)
        if data.get("augment") is not None:
            data["augment"] = AugmentConfig(**data["augment"])
        for key in ("channels", "train_subjects"):
            if data.get(key) is not None:
                data[key] = tuple(data[key])
        return cls(**data)


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and PyTorch (all devices)."""
    random.seed(seed)
    np.random.seed(seed)  # noqa: NPY002  (third-party code may still use the global generator)
    torch.manual_seed(seed)


@dataclass(frozen=True)
class Distributed:
    """This process's place among the processes `torchrun` started (one process: rank 0 of 1)."""

    rank: int = 0
    world: int = 1

    @property
    def main(self) -> bool:
        return self.rank == 0

    def barrier(self) -> None:
        if self.world > 1:
            torch.distributed.barrier()

    def sum(self, *values: torch.Tensor) -> list[torch.Tensor]:
        if self.world > 1:
            for value in values:
                torch.distributed.all_reduce(value)
        return list(values)


def init_distributed(device_name: str) -> tuple[Distributed, torch.device]:
    """Join the process group `torchrun` describes in the environment (gloo on CPU, NCCL on CUDA)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Distributed(), pick_device(device_name)
    rank, local_rank = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    cuda = torch.cuda.is_available() and device_name in ("auto", "cuda")
    if not torch.distributed.is_initialized():
        torch.distributed.init_process_group("nccl" if cuda else "gloo")
    device = torch.device("cuda", local_rank) if cuda else torch.device("cpu")
    if cuda:
        torch.cuda.set_device(device)
    return Distributed(rank, world), device


def autocast_for(device: torch.device, precision: str) -> tuple[contextlib.AbstractContextManager, bool, str]:
    """(autocast context, whether to scale gradients, resolved precision) for a device.

    `auto` is fp16 with gradient scaling on CUDA (bf16 where the GPU supports it, which needs no
    scaling) and fp32 on CPU; bf16 on CPU is an explicit choice. A precision the device cannot run is
    an error rather than a silently ignored autocast.
    """
    if precision == "auto":
        if device.type == "cuda":
            precision = "bf16" if torch.cuda.is_bf16_supported() else "fp16"
        else:
            precision = "fp32"
    if precision == "fp32":
        return contextlib.nullcontext(), False, precision
    if precision == "fp16" and device.type != "cuda":
        raise HarkitError("fp16 mixed precision needs a CUDA device; use --precision bf16 or fp32 on CPU")
    if precision not in ("fp16", "bf16"):
        raise HarkitError(f"unknown precision {precision!r}; use auto, fp32, fp16 or bf16")
    dtype = torch.float16 if precision == "fp16" else torch.bfloat16
    return torch.autocast(device.type, dtype=dtype), precision == "fp16", precision


def _model_before_data(config: TrainConfig) -> TrainConfig:
    """`--model auto` where the data is not needed: a run started from another's weights trains that run's model.

    Model options belong to a model named with --model, so with auto they are an error.
    """
    if config.model != "auto":
        return config
    if config.init_from:
        return replace(config, model=Run(config.init_from).model_name)
    if config.model_options:
        options = ", ".join(sorted(config.model_options))
        raise HarkitError(f"model options ({options}) are options of one model: name it with --model")
    return config


def choose_model(config: TrainConfig, n_windows: int, log_choice: bool = True) -> TrainConfig:
    """`config` with `--model auto` settled from the number of training windows (recipe.auto_model)."""
    config = _model_before_data(config)
    if config.model != "auto":
        return config
    model, why = recipe_module.auto_model(config, n_windows)
    if log_choice:
        choices.info("model auto: %s (%s); --model NAME trains another (see `harkit models`)", model, why)
    return replace(config, model=model)


def _prepare(config: TrainConfig, group: Distributed):
    prepared = None
    for turn in (True, False):  # the main process fills the cache first; the others then read it
        if group.main == turn:
            prepared = prepare(
                config.dataset, config.prepare_config(), data_dir=config.data_dir, **config.dataset_options
            )
        group.barrier()
    return prepared


def parameter_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """Weight decay on weights of matrices and kernels only; biases and norm weights get none."""
    decay = [p for p in model.parameters() if p.requires_grad and p.dim() >= 2]
    rest = [p for p in model.parameters() if p.requires_grad and p.dim() < 2]
    return [{"params": decay, "weight_decay": weight_decay}, {"params": rest, "weight_decay": 0.0}]


def _penalty(model: nn.Module, l1: float, l2: float) -> torch.Tensor | float:
    if not l1 and not l2:
        return 0.0
    weights = [p for p in model.parameters() if p.requires_grad and p.dim() >= 2]
    total = 0.0
    if l1:
        total = total + l1 * sum(w.abs().sum() for w in weights)
    if l2:
        total = total + l2 * sum(w.pow(2).sum() for w in weights)
    return total


def evaluate_split(model, x, y, batch_size, criterion, autocast) -> dict:
    """Loss, accuracy and macro F1 of a model on one split."""
    logits = predict_logits(model, x, batch_size, autocast)
    predictions = logits.argmax(1)
    return {
        "loss": float(criterion(logits, y)),
        "accuracy": float((predictions == y).float().mean()),
        "macro_f1": macro_f1(y.cpu().numpy(), predictions.cpu().numpy()),
    }


class Progressbar:
    """A Rich progress bar over the batches of an epoch, or nothing when disabled."""

    def __init__(self, enabled: bool) -> None:
        self.progress = (
            Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeRemainingColumn(),
                TextColumn("{task.fields[status]}"),
                transient=False,
            )
            if enabled
            else None
        )

    def __enter__(self):
        if self.progress:
            self.progress.__enter__()
        return self

    def __exit__(self, *exc):
        if self.progress:
            self.progress.__exit__(*exc)

    def task(self, description: str, total: int):
        return self.progress.add_task(description, total=total, status="") if self.progress else None

    def update(self, task, advance: int = 0, status: str | None = None) -> None:
        if self.progress is not None:
            fields = {"status": status} if status is not None else {}
            self.progress.update(task, advance=advance, **fields)


def _is_finished(out: Path) -> bool:
    return (out / "metrics.json").is_file()


def _check_run_dir(out: Path, resume: bool, overwrite: bool) -> None:
    if overwrite and out.exists():
        for path in out.iterdir():
            if path.name == LOCK_FILE:  # held by this process
                continue
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            else:
                path.unlink()
        return
    if _is_finished(out) and not resume:
        raise HarkitError(f"{out} already holds a finished run; pass --overwrite to replace it or pick another --out")
    if (out / "last.pt").is_file() and not resume:
        raise HarkitError(f"{out} holds an unfinished run; pass --resume to continue it or --overwrite to restart")


def class_weights_for(y: np.ndarray, num_classes: int) -> torch.Tensor:
    """Inverse-frequency weights normalised to mean 1; classes absent from training get weight 0."""
    counts = np.bincount(y, minlength=num_classes).astype(np.float64)
    weights = np.where(counts > 0, counts.sum() / np.maximum(counts, 1) / num_classes, 0.0)
    return torch.tensor(weights / max(weights[weights > 0].mean(), 1e-12), dtype=torch.float32)


def train(
    config: TrainConfig,
    out: Path | str,
    resume: bool = False,
    overwrite: bool = False,
    progress: bool = True,
    prepared: Prepared | None = None,
    evaluate: bool = True,
    on_epoch: Callable[[dict], None] | None = None,
) -> Path:
    """Train `config.model` on `config.dataset`; returns the run directory.

    With `resume`, an interrupted run continues from `last.pt` in `out` (same config, same random
    state); a finished run is left as it is. `on_epoch` is called with each epoch's history row (a
    hyper-parameter search reports to its pruner there). While it trains, another process training into `out`
    fails with `RunInUse`.
    """
    out = Path(out)
    main = int(os.environ.get("RANK", "0")) == 0  # under torchrun the first process holds the run
    with run_lock(out) if main else contextlib.nullcontext():
        return _train(config, out, resume, overwrite, progress, prepared, evaluate, on_epoch)


def _train(
    config: TrainConfig,
    out: Path,
    resume: bool,
    overwrite: bool,
    progress: bool,
    prepared: Prepared | None,
    evaluate: bool,
    on_epoch: Callable[[dict], None] | None,
) -> Path:
    if config.refit and int(os.environ.get("WORLD_SIZE", "1")) > 1:
        raise HarkitError("--refit runs in one process; train under torchrun without it, then refit with one process")
    if resume and _is_finished(out):
        log.info("%s is already finished", out)
        if config.refit or Run(out).config.get("refit"):
            refit(out, progress)
        return out
    group, device = init_distributed(config.device)
    if group.main:
        _check_run_dir(out, resume, overwrite)
        remove_staging(out)  # half-written files of a run killed mid-write
    group.barrier()
    chosen = {}  # what `auto` chose when the run started: a resumed run keeps it rather than probing again
    if resume and (out / "config.json").is_file():
        from harkit.training.resume import resume_config

        config = resume_config(out, config)  # other options than the run's are refused, naming each
        chosen = json.loads((out / "config.json").read_text()).get("resolved", {})
    config = _model_before_data(config)
    if config.model != "auto":
        model_options(config.model)  # an unknown model name fails here, before any data is read
    if config.epochs is not None and config.epochs < 1:
        raise HarkitError(f"epochs must be at least 1, got {config.epochs}")
    seed_everything(config.seed)
    torch.set_num_threads(config.threads or max(1, len(os.sched_getaffinity(0)) // group.world))
    from harkit.hardware import ProbeModel, agree, keep_freed_memory, resolve_compile, resolve_precision

    allocator = keep_freed_memory() if device.type == "cpu" else None  # before the probe, which it speeds too
    if config.precision != "auto":
        autocast_for(device, config.precision)  # a precision this device cannot run fails before any reading
    given = prepared is not None
    if not given:
        prepared = _prepare(config, group)
    meta = prepared.meta
    window, channels, num_classes = meta["window"], len(meta["channels"]), len(meta["classes"])
    windows = len(prepared.train) + len(prepared.val)  # what `auto` decides on
    if config.model == "auto":
        config = choose_model(config, windows, log_choice=group.main)
    model = create_model(config.model, window, channels, num_classes, **config.model_options)
    # `auto` measures this model at this shape on this machine once (cached); under torchrun the main process
    # decides for all.
    probed = ProbeModel(config.model, window, channels, num_classes, tuple(sorted(config.model_options.items())))
    if config.precision == "auto" and "precision" in chosen:
        precision, precision_reason = chosen["precision"], f"as the run chose: {chosen.get('precision_reason')}"
    elif config.precision == "auto" and is_closed_form(model):
        precision, precision_reason = "fp32", "a closed-form fit has no training steps to speed up"
    else:
        precision, precision_reason = agree(
            resolve_precision(device, config.precision, probed) if group.main else (None, None), group.world
        )
    autocast, scale_gradients, precision = autocast_for(device, precision)
    if config.val_fraction == "auto":  # prepared without validation; hold some out only if the run uses it
        if given:
            config = replace(config, val_fraction=meta["val_fraction"])
        elif recipe_module.selects_on_validation(config, windows, is_closed_form(model)):
            config = replace(config, val_fraction=recipe_module.VAL_FRACTION)
            if group.main:
                choices.info(
                    "validation: the run selects on it at %d training windows, so %g of the training subjects "
                    "validate (--val-fraction)",
                    windows,
                    config.val_fraction,
                )
            prepared = _prepare(config, group)
            meta = prepared.meta
        else:
            config = replace(config, val_fraction=0.0)
            if group.main and not resume:
                why = "a closed-form fit" if is_closed_form(model) else "the final epoch is kept, no early stopping"
                choices.info(
                    "validation: none held out; nothing is selected on it (%s), so every training subject trains. "
                    "--val-fraction 0.2 holds some out to watch",
                    why,
                )
    if config.init_from and not resume:
        from harkit.transfer import load_pretrained

        load_pretrained(model, config.init_from, meta["channels"], config.model)
    if config.freeze_features:
        from harkit.transfer import freeze_features

        freeze_features(model)
    model = model.to(device)
    # Under torchrun the training forward goes through DistributedDataParallel, which averages gradients.
    trained = torch.nn.parallel.DistributedDataParallel(model) if group.world > 1 else model

    # The whole split lives on the device; batches are index slices, with no per-sample collate.
    def tensors(part):
        # np.array copies the read-only memory map of the cache once, into writable memory.
        return torch.from_numpy(np.array(part.x, np.float32)).to(device), torch.as_tensor(part.y, device=device)

    x_train, y_train = tensors(prepared.train)
    x_val, y_val = tensors(prepared.val)
    has_val = len(y_val) > 0
    # The recipe fills every hyper-parameter left unset from the data; from here on `config` holds numbers.
    sensors = [tuple(sensor) for sensor in meta.get("sensors", sensor_groups(meta["channels"]))]
    devices = rotation_devices(meta["channels"], sensors, meta.get("devices"))
    resolved = recipe_module.resolve(
        config,
        np.asarray(prepared.train.y),
        len(y_val),
        meta["classes"],
        rotatable=any(devices),
        closed_form=is_closed_form(model),
    )
    config = replace(config, **{name: getattr(resolved, name) for name in recipe_module.RESOLVED_FIELDS})
    if group.main and not (resume and (out / "last.pt").is_file()):
        recipe_module.log_resolved(resolved)
    recalibrate = resolved.bn_recalibrate and recipe_module.has_batch_norm(model)
    # Without validation nothing reads the statistics before the last epoch, whose recalibration replaces them
    # whole: the others (12 % of a SANN epoch on HAPT) are skipped, unless their forward passes draw dropout
    # masks, which the rest of the run depends on.
    every_epoch = has_val or recipe_module.draws_random_numbers(model)
    use_compile, compile_reason = False, "closed-form fit"
    if config.compile == "auto" and "compile" in chosen:
        use_compile, compile_reason = chosen["compile"], f"as the run chose: {chosen.get('compile_reason')}"
    elif not is_closed_form(model):
        steps = config.epochs * math.ceil(len(y_train) // group.world / max(1, config.batch_size // group.world))
        use_compile, compile_reason = agree(
            resolve_compile(config.compile, device, precision, steps, config.batch_size, probed)
            if group.main
            else (None, None),
            group.world,
        )
    if group.main:
        log.info("precision %s (%s); compile %s (%s)", precision, precision_reason, use_compile, compile_reason)
        if allocator:
            log.info("memory: %s", allocator)
    weights = class_weights_for(prepared.train.y, num_classes).to(device) if config.class_weights else None
    criterion = nn.CrossEntropyLoss(weight=weights, label_smoothing=config.label_smoothing)
    # The fused kernel updates every parameter in one pass: a SANN step's optimiser update 1.5 ms -> 0.3 ms (CPU).
    fused = device.type in ("cpu", "cuda")
    optimizer = torch.optim.AdamW(parameter_groups(model, config.weight_decay), lr=config.lr, fused=fused)
    # Stepped once per batch: warm-up and cosine are counted in optimiser steps.
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, recipe_module.lr_factor(resolved, config.step_size, config.gamma)
    )
    scaler = torch.amp.GradScaler(device.type, enabled=scale_gradients)
    # One generator orders the windows (the same on every process); another, per process, augments them.
    generator = torch.Generator(device=device).manual_seed(config.seed)
    augment_generator = torch.Generator(device=device).manual_seed(config.seed + 1 + group.rank)
    augment = None
    if config.augment.enabled:
        augment = Augmenter(
            config.augment,
            sensors,
            torch.tensor(meta["mean"], device=device),
            torch.tensor(meta["std"], device=device),
            augment_generator,
            devices,  # one rotation per device
        )

    if group.main:
        out.mkdir(parents=True, exist_ok=True)
    model_spec = {
        "name": config.model,
        "window": window,
        "channels": channels,
        "num_classes": num_classes,
        "options": config.model_options,
    }
    start_epoch, best_score, best_loss, stale, history = 1, -math.inf, math.inf, 0, []
    if resume and (out / "last.pt").is_file():
        state = Run(out).checkpoint("last", device)  # loaded without unpickling code
        model.load_state_dict(state["state_dict"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        scaler.load_state_dict(state["scaler"])
        # Generator states are CPU byte tensors whatever the device; map_location may have moved them.
        generator.set_state(state["generator"].cpu())
        augment_generator.set_state(state["augment_generator"][group.rank].cpu())
        torch.set_rng_state(state["torch_rng"].cpu())
        start_epoch, best_score, stale, history = (
            state["epoch"] + 1,
            state["best_score"],
            state["stale"],
            state["history"],
        )
        best_loss = state.get("best_loss", math.inf)
        log.info("resuming %s at epoch %d", out, start_epoch)
    elif group.main:
        (out / "config.json").write_text(
            json.dumps(
                {
                    **config.to_json(),
                    "resolved": {
                        "precision": precision,
                        "precision_reason": precision_reason,
                        "compile": use_compile,
                        "compile_reason": compile_reason,
                        "allocator": allocator,
                        "device": str(device),
                        "parameters": count_parameters(model),
                        "recipe": resolved.as_dict(),
                    },
                },
                indent=2,
            )
        )
        _dataset_json(out, meta)
        record_source(out, config.dataset, config.data_dir, meta)  # lets the run find its data from anywhere

    def checkpoint_payload(epoch: int) -> dict:
        return {
            "model": model_spec,
            "state_dict": model.state_dict(),
            "epoch": epoch,
            "best_score": best_score,
            "config": config.to_json(),
            "classes": meta["classes"],
            "channels": meta["channels"],
            "mean": meta["mean"],
            "std": meta["std"],
            "sampling_rate": meta["sampling_rate"],
            "dataset": meta["dataset"],
        }

    if is_closed_form(model):  # minirocket: one fit replaces the gradient epochs
        history = [
            fit_closed_form(
                model, x_train, y_train, x_val, y_val, config.batch_size, criterion, config.seed, evaluate_split
            )
        ]
        if group.main:
            save_checkpoint(out / "best.pt", checkpoint_payload(1))
            _write_history(out, history)
        start_epoch = config.epochs + 1
    # The compiled module shares its parameters with `model`; a last, smaller batch runs eagerly instead of
    # compiling a second graph for its shape, unless SANN's fused kernels train it (they take any batch).
    compiled, any_batch = trained, lambda x: False
    if use_compile:
        from harkit.training.compile import compile_model  # imports Inductor: 2 s
        from harkit.training.fused_sann import FusedTraining

        compiled = compile_model(trained)
        if isinstance(compiled, FusedTraining):
            any_batch = compiled.fuses
    # Each process takes every world-th window of the shared order and a batch of batch_size / world, so a
    # step sees the same windows as one process with batch_size would.
    batch_size = max(1, config.batch_size // group.world)
    shard = len(y_train) // group.world
    batches = math.ceil(shard / batch_size)
    with Progressbar(progress and group.main) as bar:
        for epoch in range(start_epoch, config.epochs + 1):
            if config.patience is not None and has_val and stale >= config.patience:
                break
            began = time.perf_counter()
            epoch_lr = optimizer.param_groups[0]["lr"]  # the schedule moves it batch by batch
            model.train()
            task = bar.task(f"epoch {epoch}/{config.epochs}", batches)
            order = torch.randperm(len(y_train), generator=generator, device=device)[group.rank :: group.world][:shard]
            total_loss = torch.zeros((), device=device)
            correct = torch.zeros((), device=device, dtype=torch.long)
            for start in range(0, len(order), batch_size):
                index = order[start : start + batch_size]
                xb, yb = x_train[index], y_train[index]
                if augment is not None:
                    xb = augment(xb)
                try:
                    with autocast:
                        logits = (compiled if len(yb) == batch_size or any_batch(xb) else trained)(xb)
                        loss = criterion(logits.float(), yb) + _penalty(model, config.l1, config.l2)
                except (torch.OutOfMemoryError, MemoryError, RuntimeError) as error:
                    cpu_exhausted = "can't allocate memory" in str(error)  # the CPU allocator's RuntimeError
                    if not isinstance(error, (torch.OutOfMemoryError, MemoryError)) and not cpu_exhausted:
                        raise
                    raise HarkitError(
                        f"out of memory with batch size {config.batch_size} on {device}; use a smaller --batch-size"
                    ) from None
                optimizer.zero_grad(set_to_none=True)
                scaler.scale(loss).backward()
                scaler.step(optimizer)
                scaler.update()
                scheduler.step()
                total_loss += loss.detach() * len(yb)
                correct += (logits.argmax(1) == yb).sum()
                bar.update(task, advance=1)
            seen = torch.tensor(len(order), device=device)
            total_loss, correct, seen = group.sum(total_loss, correct, seen)
            train_loss = float(total_loss) / int(seen)  # float() waits for the device
            train_seconds = time.perf_counter() - began
            if not math.isfinite(train_loss):
                from harkit.runs import mark_failed
                from harkit.training.divergence import TrainingDiverged

                message = (
                    f"the training loss became {train_loss} at epoch {epoch}; lower --lr (now {config.lr}), "
                    "use --precision fp32, or check the data for extreme values"
                )
                if group.main:
                    mark_failed(out, message)  # the run's status says failed, not interrupted
                raise TrainingDiverged(message)
            row = {
                "epoch": epoch,
                "train_loss": train_loss,
                "train_accuracy": float(correct) / int(seen),
                "lr": epoch_lr,
            }
            if recalibrate and (every_epoch or epoch == config.epochs):
                recipe_module.recalibrate_batch_norm(model, x_train, config.batch_size)
            if has_val:
                # Training-sized batches: on a CPU their activations stay in cache, where 1024 is 1.7x slower.
                # In full precision, as the test part is scored (evaluate_run), whatever precision trained.
                scores = evaluate_split(model, x_val, y_val, config.batch_size, criterion, None)
                row |= {
                    "val_loss": scores["loss"],
                    "val_accuracy": scores["accuracy"],
                    "val_macro_f1": scores["macro_f1"],
                }
                # Ties in macro F1 (frequent on small validation parts) go to the lower validation loss.
                improved = scores["macro_f1"] > best_score or (
                    scores["macro_f1"] == best_score and scores["loss"] < best_loss
                )
                improved = improved or config.keep == "last"
                if improved:
                    best_loss = scores["loss"]
            else:
                row |= {"val_loss": "", "val_accuracy": "", "val_macro_f1": ""}
                improved = True
            row |= {"seconds": time.perf_counter() - began, "train_seconds": train_seconds}
            history.append(row)
            if improved:
                best_score, stale = (row["val_macro_f1"] if has_val else epoch), 0
                if group.main:
                    save_checkpoint(out / "best.pt", checkpoint_payload(epoch))
            else:
                stale += 1
            augment_states = [augment_generator.get_state()]
            if group.world > 1:
                augment_states = [torch.empty_like(augment_states[0], device=device) for _ in range(group.world)]
                torch.distributed.all_gather(augment_states, augment_generator.get_state().to(device))
            if not group.main:
                continue
            _write_history(out, history)
            save_checkpoint(
                out / "last.pt",
                {
                    **checkpoint_payload(epoch),
                    "optimizer": optimizer.state_dict(),
                    "scheduler": scheduler.state_dict(),
                    "scaler": scaler.state_dict(),
                    "generator": generator.get_state(),
                    "augment_generator": [state.cpu() for state in augment_states],
                    "torch_rng": torch.get_rng_state(),
                    "stale": stale,
                    "best_loss": best_loss,
                    "history": history,
                },
            )
            status = f"loss {train_loss:.4f} acc {row['train_accuracy']:.3f}"
            if has_val:
                status += f" | val acc {row['val_accuracy']:.3f} F1 {row['val_macro_f1']:.3f}"
            bar.update(task, status=status)
            log.info("epoch %d: %s", epoch, status)
            if on_epoch is not None:
                on_epoch(row)
    # A final run that learned nothing fails loudly; a search's trial is just scored low. A closed-form fit has no
    # learning rate to diverge with.
    if evaluate and not is_closed_form(model):
        from harkit.training.divergence import TrainingDiverged, diverged

        steps = len(history) * batches
        problem = diverged(history, num_classes, np.asarray(prepared.train.y), np.asarray(prepared.val.y), steps)
        if problem is not None:
            message = (
                f"{problem}. Lower --lr (now {config.lr:g}), use --precision fp32, or check the data for extreme "
                f"values; the run's files are kept in {out}"
            )
            if group.main:
                from harkit.runs import mark_failed

                mark_failed(out, message)
            raise TrainingDiverged(message)
    if evaluate and group.main:
        from harkit.evaluation.evaluate import evaluate_run

        evaluate_run(out, prepared=prepared, device=device)
    if group.world > 1:
        group.barrier()
        torch.distributed.destroy_process_group()
    if config.refit and evaluate and has_val:
        refit(out, progress)
    elif config.refit and evaluate and group.main:
        log.info("no refit: no training subject validated, so the run trained on all of them already")
    return out


def refit(out: Path | str, progress: bool = True) -> dict:
    """Train the finished run `out` again on all its training subjects, validation included, into `out/refit`.

    The refit has the run's resolved recipe, precision and compile, for as many epochs as the best epoch on
    validation (the schedule is laid over those epochs); it keeps its last epoch, as nothing is left to
    validate on. Its test scores are added to the run's `metrics.json` under `refit`; returns them. An
    interrupted refit resumes.
    """
    out = Path(out)
    run = Run(out)
    metrics = run.metrics
    if metrics is None:
        raise HarkitError(f"{out} is not a finished run: train it to the end before refitting")
    saved = run.config
    resolved = saved.get("resolved", {})
    config = replace(
        TrainConfig.from_json(saved),
        val_fraction=0.0,
        epochs=int(metrics["best_epoch"]),
        patience=None,
        refit=False,
        precision=resolved.get("precision", saved.get("precision", "auto")),
        compile=resolved.get("compile", saved.get("compile", "auto")),
    )
    log.info("refit on all training subjects for %d epochs, into %s", config.epochs, out / "refit")
    refitted = train(config, out / "refit", resume=True, progress=progress)
    scores = json.loads((refitted / "metrics.json").read_text())
    summary = {
        "run": "refit",
        "epochs": config.epochs,
        "accuracy": scores["accuracy"],
        "macro_f1": scores["macro_f1"],
        "train_subjects": json.loads((refitted / "dataset.json").read_text())["subjects"]["train"],
    }
    write_text_whole(out / "metrics.json", json.dumps(metrics | {"refit": summary}, indent=2))
    return summary


def _write_history(out: Path, history: list[dict]) -> None:
    text = io.StringIO(newline="")
    writer = csv.DictWriter(text, fieldnames=HISTORY_FIELDS)
    writer.writeheader()
    writer.writerows(history)
    write_text_whole(out / "history.csv", text.getvalue())  # a full disk keeps the old history, and says so


def _dataset_json(out: Path, meta: dict) -> None:
    (out / "dataset.json").write_text(json.dumps(meta, indent=2))
