"""The comparison report: a grid of datasets x models x seeds, summarised in Markdown and HTML.

Only finished run directories are read, so `harkit report DIR` rebuilds the report at any time; runs
that failed (an `error.txt` in their directory) or never finished are listed as such, never dropped.
"""

from __future__ import annotations

import base64
import html
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from scipy import stats

COLUMNS = [
    ("accuracy", "accuracy", "{:.4f}"),
    ("macro_f1", "macro F1", "{:.4f}"),
    ("weighted_f1", "weighted F1", "{:.4f}"),
    ("latency_ms", "ms / window (batch 1)", "{:.3f}"),
    ("epochs_run", "epochs", "{:.1f}"),
    ("seconds_per_epoch", "s / epoch", "{:.2f}"),
    ("final_train_loss", "final train loss", "{:.4f}"),
]


def run_dir(root: Path, dataset: str, model: str, seed: int) -> Path:
    """Where the grid keeps one run."""
    return Path(root) / "runs" / dataset.replace("/", "_") / model / f"seed-{seed}"


@dataclass
class RunResult:
    """One cell of the grid: its metrics when finished, its error when failed."""

    dataset: str
    model: str
    seed: int
    path: Path
    metrics: dict | None = None
    error: str | None = None

    @property
    def status(self) -> str:
        return "finished" if self.metrics else ("failed" if self.error else "not finished")

    def value(self, key: str) -> float | None:
        if self.metrics is None:
            return None
        if key == "latency_ms":
            return self.metrics["latency"]["batch_1"]["per_window_ms"]
        return self.metrics.get(key)


@dataclass
class Grid:
    """The runs a benchmark asked for, as recorded in `grid.json`, plus any others found on disk."""

    root: Path
    datasets: list[str] = field(default_factory=list)
    models: list[str] = field(default_factory=list)
    seeds: list[int] = field(default_factory=list)

    @classmethod
    def load(cls, root: Path) -> Grid:
        path = Path(root) / "grid.json"
        data = json.loads(path.read_text()) if path.is_file() else {}
        return cls(Path(root), data.get("datasets", []), data.get("models", []), data.get("seeds", []))

    def save(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        data = {"datasets": self.datasets, "models": self.models, "seeds": self.seeds}
        (self.root / "grid.json").write_text(json.dumps(data, indent=2))

    def results(self) -> list[RunResult]:
        cells = {run_dir(self.root, d, m, s): (d, m, s) for d in self.datasets for m in self.models for s in self.seeds}
        for path in sorted((self.root / "runs").glob("*/*/seed-*")):
            # runs on disk that the grid does not name (an earlier, larger grid) are reported too
            cells.setdefault(path, (path.parent.parent.name, path.parent.name, int(path.name.removeprefix("seed-"))))
        results = []
        for path, (dataset, model, seed) in sorted(cells.items(), key=lambda item: item[1]):
            result = RunResult(dataset, model, seed, path)
            if (path / "metrics.json").is_file():
                result.metrics = json.loads((path / "metrics.json").read_text())
            elif (path / "error.txt").is_file():
                result.error = (path / "error.txt").read_text().strip()
            results.append(result)
        return results


def summarise(results: list[RunResult]) -> list[dict]:
    """Mean and standard deviation over seeds for every dataset x model with a finished run."""
    rows = []
    for dataset in sorted({r.dataset for r in results}):
        for model in sorted({r.model for r in results if r.dataset == dataset}):
            cell = [r for r in results if r.dataset == dataset and r.model == model]
            done = [r for r in cell if r.metrics]
            row = {"dataset": dataset, "model": model, "finished": len(done), "runs": len(cell)}
            for key, _, _ in COLUMNS:
                values = [v for v in (r.value(key) for r in done) if v is not None]
                row[key] = (
                    (float(np.mean(values)), float(np.std(values, ddof=1)) if len(values) > 1 else 0.0, values)
                    if values
                    else None
                )
            row["parameters"] = done[0].metrics["parameters"] if done else None
            row["macs"] = done[0].metrics["macs_per_window"] if done else None
            rows.append(row)
    return rows


BASELINE = "minirocket"  # the classical baseline every model of a dataset is set against


def versus_baseline(rows: list[dict], metric: str = "macro_f1", baseline: str = BASELINE) -> None:
    """Add `vs_baseline` to each summary row: its mean `metric` minus the baseline's on the same dataset (or None)."""
    means = {r["dataset"]: r[metric][0] for r in rows if r["model"] == baseline and r[metric] is not None}
    for row in rows:
        reference = means.get(row["dataset"])
        known = reference is not None and row[metric] is not None and row["model"] != baseline
        row["vs_baseline"] = row[metric][0] - reference if known else None


def attention_effect(results: list[RunResult], metric: str = "macro_f1") -> list[dict]:
    """SANN against the plain CNN per dataset: difference of means and a paired t-test over seeds.

    The test is paired: runs of one seed share the validation subjects, so their difference is what varies.
    """
    effects = []
    for dataset in sorted({r.dataset for r in results}):
        by_seed = {
            model: {r.seed: r.value(metric) for r in results if r.dataset == dataset and r.model == model and r.metrics}
            for model in ("sann", "cnn")
        }
        sann, cnn = list(by_seed["sann"].values()), list(by_seed["cnn"].values())
        if not sann or not cnn:
            continue
        seeds = sorted(set(by_seed["sann"]) & set(by_seed["cnn"]))
        paired_sann = np.array([by_seed["sann"][s] for s in seeds])
        paired_cnn = np.array([by_seed["cnn"][s] for s in seeds])
        effect = {
            "dataset": dataset,
            "metric": metric,
            "sann": float(np.mean(sann)),
            "cnn": float(np.mean(cnn)),
            "difference": float(np.mean(sann) - np.mean(cnn)),
            "seeds": (len(sann), len(cnn)),
            "p_value": None,
        }
        effect["paired_seeds"] = len(seeds)
        if len(seeds) > 1 and np.std(paired_sann - paired_cnn) > 0:
            effect["p_value"] = float(stats.ttest_rel(paired_sann, paired_cnn).pvalue)
        effects.append(effect)
    return effects


def _cell(value, fmt: str) -> str:
    if value is None:
        return "–"
    mean, std, values = value
    return f"{fmt.format(mean)} ± {fmt.format(std)}" if len(values) > 1 else fmt.format(mean)


def _bar_chart(rows: list[dict], group: str, member: str, metrics: list[str], title: str, path: Path) -> None:
    groups = sorted({r[group] for r in rows})
    if len(groups) > 1 and len({r[member] for r in rows}) == 1:
        # one bar per panel says little: one panel with every group side by side instead
        return _bar_chart(rows, member, group, metrics, title, path)
    # At most 3 panels a row, on one y scale, so titles keep their room and bars compare across panels.
    columns = min(3, len(groups))
    lines = -(-len(groups) // columns)
    fig, axes = plt.subplots(
        lines,
        columns,
        figsize=(max(5.5, 4.6 * columns), 0.6 + 3.9 * lines),
        squeeze=False,
        sharey=True,
        layout="constrained",
    )
    for ax in axes.flat[len(groups) :]:
        ax.set_visible(False)
    low = min((r[m][0] - r[m][1] for r in rows if r["accuracy"] is not None for m in metrics), default=0)
    for ax, name in zip(axes.flat, groups, strict=False):
        members = [r for r in rows if r[group] == name and r["accuracy"] is not None]
        positions = np.arange(len(members))
        width = 0.8 / len(metrics)
        for offset, metric in enumerate(metrics):
            means = [r[metric][0] for r in members]
            errors = [r[metric][1] for r in members]
            ax.bar(
                positions + (offset - (len(metrics) - 1) / 2) * width,
                means,
                width,
                yerr=errors,
                capsize=3,
                label=metric.replace("_", " "),
            )
        ax.set_xticks(positions, [r[member] for r in members], rotation=30, ha="right", fontsize=8)
        ax.set_ylim(max(0.0, low - 0.05), 1.0)
        ax.set_title(f"{group} {name}", fontsize=10)
        ax.set_xlabel(member)
        if ax.get_subplotspec().is_first_col():
            ax.set_ylabel("score (mean ± std over seeds)")
        ax.grid(axis="y", alpha=0.3)
        if len(metrics) > 1:
            ax.legend(fontsize=7, loc="lower right")
    title = title if len(metrics) > 1 else f"{title}: {metrics[0].replace('_', ' ')}"
    if len(groups) == 1:  # one panel: one title, not a figure title sitting on the panel's
        axes[0, 0].set_title(f"{title}, {group} {groups[0]}", fontsize=11)
    else:
        fig.suptitle(title, fontsize=12, fontweight="bold")
        fig.get_layout_engine().set(h_pad=0.15)  # room between the figure title and the panel titles
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _cost_chart(rows: list[dict], path: Path) -> None:
    done = [r for r in rows if r["accuracy"] is not None]
    fig, (time_ax, latency_ax) = plt.subplots(1, 2, figsize=(11, 4.2), layout="constrained")
    labels = [f"{r['dataset']}\n{r['model']}" for r in done]
    positions = np.arange(len(done))
    time_ax.bar(positions, [r["seconds_per_epoch"][0] if r["seconds_per_epoch"] else 0 for r in done])
    time_ax.set_ylabel("seconds per epoch")
    latency_ax.bar(positions, [r["latency_ms"][0] for r in done], color="tab:orange")
    latency_ax.set_ylabel("ms per window at batch 1")
    for ax, title in ((time_ax, "training time per epoch"), (latency_ax, "inference latency")):
        ax.set_xticks(positions, labels, rotation=45, ha="right", fontsize=7)
        ax.set_title(title)
        ax.grid(axis="y", alpha=0.3)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_report(root: Path | str) -> tuple[Path, Path]:
    """Write `report.md` (figures beside it in `figures/`) and a self-contained `report.html`."""
    root = Path(root)
    results = Grid.load(root).results()
    rows = summarise(results)
    versus_baseline(rows)
    figures = root / "figures"
    figures.mkdir(parents=True, exist_ok=True)
    images: list[tuple[str, Path]] = []
    if any(r["accuracy"] for r in rows):
        _bar_chart(
            rows,
            "dataset",
            "model",
            ["accuracy", "macro_f1"],
            "models compared per dataset",
            figures / "models_per_dataset.png",
        )
        _bar_chart(
            rows, "model", "dataset", ["macro_f1"], "datasets compared per model", figures / "datasets_per_model.png"
        )
        _cost_chart(rows, figures / "cost.png")
        images += [
            ("Models per dataset", figures / "models_per_dataset.png"),
            ("Datasets per model", figures / "datasets_per_model.png"),
            ("Training and inference cost", figures / "cost.png"),
        ]
    curves = [
        (f"{r.dataset} / {r.model} / seed {r.seed}", r.path / "plots" / "curves.png")
        for r in results
        if r.metrics and (r.path / "plots" / "curves.png").is_file()
    ]

    lines = ["# harkit comparison report", ""]
    headers = ["dataset", "model", "runs"] + [title for _, title, _ in COLUMNS] + ["parameters", "MACs / window"]
    headers.append(f"macro F1 vs {BASELINE}")
    table = [headers]
    for row in rows:
        table.append(
            [
                row["dataset"],
                row["model"],
                f"{row['finished']}/{row['runs']}",
                *(_cell(row[key], fmt) for key, _, fmt in COLUMNS),
                f"{row['parameters']:,}" if row["parameters"] else "–",
                f"{row['macs']:,}" if row["macs"] else "–",
                f"{row['vs_baseline']:+.4f}" if row["vs_baseline"] is not None else "–",
            ]
        )
    lines += _markdown_table(table)
    effects = attention_effect(results)
    if effects:
        lines += ["", "## Does spatial attention help? (SANN against the plain CNN, macro F1)", ""]
        for e in effects:
            verdict = (
                "not testable with fewer than two seeds run by both"
                if e["p_value"] is None
                else f"paired t-test over {e['paired_seeds']} seeds p = {e['p_value']:.3f}, "
                + ("beyond seed-to-seed noise (p < 0.05)" if e["p_value"] < 0.05 else "within seed-to-seed noise")
            )
            lines.append(
                f"- {e['dataset']}: SANN {e['sann']:.4f} vs CNN {e['cnn']:.4f}, difference "
                f"{e['difference']:+.4f} over {e['seeds'][0]} and {e['seeds'][1]} seeds; {verdict}."
            )
    problems = [r for r in results if not r.metrics]
    if problems:
        lines += ["", "## Runs without results", ""]
        lines += _markdown_table(
            [["dataset", "model", "seed", "status", "error"]]
            + [
                [r.dataset, r.model, str(r.seed), r.status, (r.error or "").splitlines()[-1] if r.error else ""]
                for r in problems
            ]
        )
    for title, image in images:
        lines += ["", f"## {title}", "", f"![{title}]({image.relative_to(root)})"]
    if curves:
        lines += ["", "## Learning curves of each run", ""]
        lines += [f"### {title}\n\n![{title}]({image.relative_to(root)})\n" for title, image in curves]
    markdown = "\n".join(lines) + "\n"
    (root / "report.md").write_text(markdown)
    (root / "report.html").write_text(_html(lines, root))
    return root / "report.md", root / "report.html"


def write_run_report(run: Path | str, metrics: dict) -> Path:
    """Write `report.html` of one run: headline metrics, cost, the per-class table and its plots (embedded)."""
    run = Path(run)
    latency = metrics.get("latency", {}).get("batch_1", {})
    lines = [
        f"# {metrics['model']} on {metrics['dataset']}, seed {metrics.get('seed', '–')}",
        "",
        f"Run folder: {run.resolve()}. Test windows: {metrics['samples']} (subjects "
        f"{', '.join(map(str, metrics.get('test_subjects', [])))}).",
        "",
    ]
    lines += _markdown_table(
        [
            ["accuracy", "macro F1", "weighted F1", "macro precision", "macro recall", "best epoch", "epochs run"],
            [
                *(f"{metrics[k]:.4f}" for k in ("accuracy", "macro_f1", "weighted_f1", "macro_precision")),
                f"{metrics['macro_recall']:.4f}",
                str(metrics.get("best_epoch", "–")),
                str(metrics.get("epochs_run", "–")),
            ],
        ]
    )
    if "parameters" in metrics:
        lines += [
            "",
            f"{metrics['parameters']:,} parameters, {metrics.get('macs_per_window', 0):,} multiply-adds per window; "
            f"{latency.get('per_window_ms', float('nan')):.3f} ms per window at batch 1 on "
            f"{metrics.get('latency', {}).get('device', '?')}; {metrics.get('seconds_per_epoch', float('nan')):.2f} s "
            "per training epoch.",
        ]
    lines += ["", "## Per class (test)", ""]
    lines += _markdown_table(
        [["class", "precision", "recall", "F1", "support", "share"]]
        + [
            [
                r["class"],
                f"{r['precision']:.3f}",
                f"{r['recall']:.3f}",
                f"{r['f1']:.3f}",
                str(r["support"]),
                f"{r['proportion']:.1%}",
            ]
            for r in metrics["per_class"]
        ]
    )
    titles = {"curves.png": "Learning curves", "per_class.png": "Per-class scores", "confusion.png": "Confusion"}
    for name, title in titles.items():
        if (run / "plots" / name).is_file():
            lines += ["", f"## {title}", "", f"![{title}](plots/{name})"]
    page = run / "report.html"
    staging = run / "report.html.tmp"
    staging.write_text(
        _html(lines, run).replace("<title>harkit report</title>", f"<title>{html.escape(lines[0][2:])}</title>")
    )
    staging.replace(page)
    return page


def markdown_tables(markdown: str) -> list[tuple[str, list[list[str]]]]:
    """The tables of a Markdown text, each with the heading above it: `[(heading, [header, *rows])]`."""
    tables: list[tuple[str, list[list[str]]]] = []
    heading, current = "", None
    for line in markdown.splitlines():
        if line.startswith("|"):
            cells = [c.strip().replace("\\|", "|") for c in re.split(r"(?<!\\)\|", line.strip()[1:-1])]
            if all(set(c) <= {"-", ":"} for c in cells):
                continue
            if current is None:
                current = []
                tables.append((heading, current))
            current.append(cells)
            continue
        current = None
        if line.startswith("#"):
            heading = line.lstrip("#").strip()
    return tables


def _markdown_table(rows: list[list[str]]) -> list[str]:
    escape = [[c.replace("|", "\\|") for c in row] for row in rows]
    return ["| " + " | ".join(escape[0]) + " |", "|" + "---|" * len(escape[0])] + [
        "| " + " | ".join(row) + " |" for row in escape[1:]
    ]


def _html(lines: list[str], root: Path) -> str:
    """A small Markdown subset to HTML, with every image embedded as base64."""
    body, table = [], []

    def flush_table():
        if table:
            head, *rest = table
            body.append(
                "<table><tr>"
                + "".join(f"<th>{c}</th>" for c in head)
                + "</tr>"
                + "".join("<tr>" + "".join(f"<td>{c}</td>" for c in r) + "</tr>" for r in rest)
                + "</table>"
            )
            table.clear()

    for line in "\n".join(lines).splitlines():
        if line.startswith("|"):
            cells = [html.escape(c.strip().replace("\\|", "|")) for c in line.strip("|").split(" | ")]
            if not all(set(c) <= {"-"} for c in line.strip("|").split("|")):
                table.append(cells)
            continue
        flush_table()
        if line.startswith("!["):
            alt, src = line[2:].split("](", 1)
            data = base64.b64encode((root / src.rstrip(")")).read_bytes()).decode()
            body.append(f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{data}">')
        elif line.startswith("#"):
            level = len(line) - len(line.lstrip("#"))
            body.append(f"<h{level}>{html.escape(line.lstrip('#').strip())}</h{level}>")
        elif line.startswith("- "):
            body.append(f"<p>• {html.escape(line[2:])}</p>")
        elif line.strip():
            body.append(f"<p>{html.escape(line)}</p>")
    flush_table()
    style = (
        "body{font-family:sans-serif;max-width:1200px;margin:2em auto}table{border-collapse:collapse;"
        "font-size:13px}td,th{border:1px solid #ccc;padding:4px 8px;text-align:right}img{max-width:100%}"
    )
    return f"<!doctype html><meta charset='utf-8'><title>harkit report</title><style>{style}</style>" + "".join(body)
