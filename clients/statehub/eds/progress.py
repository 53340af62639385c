"""Progress of a long ingest on a terminal: rows read, then readings committed, their rate and the ETA.

Drawn with rich on stderr, and only when stderr is a terminal (and not with
--json): in a pipe, a cron job or a log, the command prints its summary line
and nothing else.  Small ingests finish before a bar is worth drawing, and rich
is imported only when a bar is drawn.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rich.progress import Progress, Task, TaskID
    from rich.text import Text

MIN_BYTES = 1_000_000  # files smaller than this parse in well under a second
MIN_READINGS = 2000  # fewer readings commit before a bar is worth drawing


def amount(task: Task) -> Text:
    """Rows read so far while reading; readings committed of all, then their rate, while committing."""
    from rich.text import Text

    rows = task.fields.get("rows")
    if rows is not None:
        return Text(f"{rows:,} rows", style="progress.data.speed", no_wrap=True)
    speed = task.finished_speed or task.speed
    rate = f", {speed:,.0f}/s" if speed else ""
    text = f"{task.completed:,.0f}/{task.total or 0:,.0f} readings{rate}"
    return Text(text, style="progress.data.speed", no_wrap=True)


class IngestProgress:
    """Reading files, then committing readings; a context manager, inert when not ``enabled``."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self._progress: Progress | None = None
        self._reading: TaskID | None = None
        self._committing: TaskID | None = None

    def __enter__(self) -> IngestProgress:
        return self

    def __exit__(self, *exc_info: Any) -> None:
        if self._progress is not None:
            self._progress.stop()

    def reading(self, files: int, size: int) -> None:
        """Files of ``size`` bytes in all are about to be parsed."""
        if not self.enabled or size < MIN_BYTES:
            return
        progress = self._started()
        self._reading = progress.add_task(f"reading {files} file{'s' if files != 1 else ''}", total=files, rows=0)

    def rows(self, count: int) -> None:
        """One more file was parsed: ``count`` rows."""
        if self._progress is not None and self._reading is not None:
            rows = self._progress.tasks[self._reading].fields["rows"] + count
            self._progress.update(self._reading, advance=1, rows=rows)

    def __call__(self, done: int, total: int) -> None:
        """``done`` more readings were committed, of ``total`` (ingest's progress callback)."""
        if not self.enabled or total < MIN_READINGS:
            return
        progress = self._started()
        if self._committing is None:
            self._committing = progress.add_task("committing", total=total)
        progress.update(self._committing, advance=done)

    def _started(self) -> Progress:
        if self._progress is None:
            from rich.console import Console
            from rich.progress import (
                BarColumn,
                Progress,
                RenderableColumn,
                TextColumn,
                TimeElapsedColumn,
                TimeRemainingColumn,
            )

            class Amount(RenderableColumn):
                def render(self, task: Task) -> Text:
                    return amount(task)

            self._progress = Progress(
                TextColumn("{task.description:<12}"),
                BarColumn(bar_width=30),
                Amount(),
                TextColumn("ETA"),
                TimeRemainingColumn(),
                TimeElapsedColumn(),
                console=Console(stderr=True),
                transient=False,
            )
            self._progress.start()
        return self._progress
