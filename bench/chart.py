"""The PNG chart: requests/s and p99 per system and operation, one column per concurrency."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

from bench.report import TARGET_CONCURRENCY, Cell, _order_key, _system_order, index_cells

COLOURS = {
    "mock-kms": "#1f77b4",
    "mock-kms-sigv4": "#6baed6",
    "mock-kms-pkcs11": "#2ca02c",
    "moto": "#d62728",
    "ceiling": "#7f7f7f",
    "mock-kms-postgres": "#9467bd",
    "mock-kms-postgres-2hosts": "#c5b0d5",
}

PANELS = (
    ("requests_per_second", "requests/s (higher is better)"),
    ("p99_ms", "p99 ms (lower is better, log)"),
)


def draw_chart(cells: Iterable[Cell], concurrencies: Sequence[int], path: Path, title: str) -> None:
    """Write the chart to ``path`` (PNG). Needs matplotlib (installed by ``make bench``)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import LogLocator, NullFormatter, ScalarFormatter

    indexed = index_cells(cells)
    systems = sorted({c.system for c in indexed.values()}, key=_system_order)
    operations = sorted({c.operation for c in indexed.values()}, key=lambda o: _order_key((o, 0)))
    figure, axes = plt.subplots(
        2, len(concurrencies), figsize=(6 * len(concurrencies), 9), squeeze=False
    )
    width = 0.8 / max(1, len(systems))
    for column, concurrency in enumerate(concurrencies):
        for row, (metric, label) in enumerate(PANELS):
            axis = axes[row][column]
            for offset, system in enumerate(systems):
                values = []
                for operation in operations:
                    cell = indexed.get((system, operation, concurrency))
                    values.append(getattr(cell, metric) if cell is not None else 0.0)
                shift = (offset - (len(systems) - 1) / 2) * width
                positions = [i + shift for i in range(len(operations))]
                axis.bar(
                    positions,
                    values,
                    width,
                    label=system,
                    color=COLOURS.get(system),
                )
            axis.set_xticks(range(len(operations)))
            axis.set_xticklabels(operations, rotation=20, ha="right", fontsize=9)
            axis.set_title(f"concurrency {concurrency}: {label.split(' (')[0]}")
            axis.set_ylabel(label, fontsize=9)
            axis.grid(axis="y", alpha=0.3)
            if metric == "p99_ms":
                axis.set_yscale("log")
                axis.yaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
                axis.yaxis.set_major_formatter(ScalarFormatter())
                axis.yaxis.set_minor_formatter(NullFormatter())
                if concurrency == TARGET_CONCURRENCY:
                    axis.axhline(15, color="black", linestyle="--", linewidth=0.8)
                    axis.text(-0.4, 15, "15 ms target", fontsize=8, va="bottom")
    handles, labels = axes[0][0].get_legend_handles_labels()
    # ncol 0 is refused: a run in which every system was left out still gets its chart.
    figure.legend(handles, labels, loc="lower center", ncol=max(1, len(systems)), fontsize=10)
    figure.suptitle(title, fontsize=11)
    figure.tight_layout(rect=(0, 0.04, 1, 1))
    figure.savefig(path, dpi=110)
    plt.close(figure)
