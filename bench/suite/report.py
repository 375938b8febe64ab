"""Tables printed to the terminal and collected into a markdown report with PNG plots."""
from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np


def _cell(value: Any, digits: int) -> str:
    if isinstance(value, float):
        return "-" if math.isnan(value) else f"{value:.{digits}f}"
    return str(value)


def text_table(headers: Sequence[str], rows: Sequence[Sequence[Any]], digits: int = 2) -> str:
    cells = [[_cell(v, digits) for v in row] for row in rows]
    widths = [max([len(h)] + [len(r[i]) for r in cells]) for i, h in enumerate(headers)]

    def line(r: Sequence[str]) -> str:
        return "  ".join(v.rjust(w) if i else v.ljust(w) for i, (v, w) in enumerate(zip(r, widths, strict=False)))

    return "\n".join([line(list(headers)), line(["-" * w for w in widths])] + [line(r) for r in cells])


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[Any]], digits: int = 2) -> str:
    head = "| " + " | ".join(headers) + " |"
    rule = "|" + "|".join("---" if i == 0 else "---:" for i in range(len(headers))) + "|"
    body = ["| " + " | ".join(_cell(v, digits) for v in row) + " |" for row in rows]
    return "\n".join([head, rule, *body])


class Report:
    """One sub-suite's report: ``folder/report.md``, its PNGs and ``results.json``."""

    def __init__(self, title: str, folder: Path, echo: bool = True):
        self.title = title
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.parts: list[str] = [f"# {title}\n"]
        self.data: dict[str, Any] = {}
        self.echo = echo

    def text(self, markdown: str) -> None:
        self.parts.append(markdown.strip() + "\n")

    def table(self, caption: str, headers: Sequence[str], rows: Sequence[Sequence[Any]], digits: int = 2) -> None:
        if self.echo:
            print(f"\n== {self.title}: {caption}\n{text_table(headers, rows, digits)}", flush=True)
        self.parts.append(f"**{caption}**\n\n{markdown_table(headers, rows, digits)}\n")

    def figure(self, fig, name: str, caption: str) -> Path:
        path = self.folder / f"{name}.png"
        fig.savefig(path, dpi=110, bbox_inches="tight")
        import matplotlib.pyplot as plt

        plt.close(fig)
        self.parts.append(f"![{caption}]({path.name})\n\n*{caption}*\n")
        return path

    def write(self) -> Path:
        path = self.folder / "report.md"
        path.write_text("\n".join(self.parts))
        (self.folder / "results.json").write_text(json.dumps(self.data, indent=2, sort_keys=True, default=_jsonable))
        if self.echo:
            print(f"\nreport: {path}", flush=True)
        return path


def _jsonable(value: Any) -> Any:
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def new_figure(width: float = 7.0, height: float = 4.2, columns: int = 1):
    """A figure on the Agg backend (no display needed) with ``columns`` gridded axes."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, columns, figsize=(width, height))
    for ax in np.atleast_1d(axes):
        ax.grid(True, alpha=0.3)
    return fig, axes
