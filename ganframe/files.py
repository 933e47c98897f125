"""Files a run writes: atomically replaced (a reader or a crash never sees half a file), or logs by step."""

from __future__ import annotations

import contextlib
import csv
import os
import tempfile
from pathlib import Path
from typing import IO, Any, Iterator


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike[str], mode: str = "wb") -> Iterator[IO]:
    """Write to a temporary file beside ``path``, fsync it, then rename it over ``path``.

    If the block raises, ``path`` is left as it was and the temporary file is removed.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; the result should look like any file the user writes
    try:
        with os.fdopen(fd, mode) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    with contextlib.suppress(OSError):  # make the rename itself durable where the OS allows
        dir_fd = os.open(target.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


class CsvLog:
    """A CSV log with one row per step (``metrics.csv``, ``evaluations.csv``).

    Rows are appended as training goes; when a run resumes or rolls back to an earlier
    step, :meth:`truncate_after` drops the rows after it, so the log continues with
    increasing steps, no duplicates and no gaps. The columns are fixed by the file's
    header, or by the first row written.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.columns: list[str] | None = None

    def _header(self) -> list[str] | None:
        if not self.path.is_file() or self.path.stat().st_size == 0:
            return None
        with open(self.path, newline="") as handle:
            return next(csv.reader(handle), None)

    def append(self, row: dict[str, Any]) -> None:
        """Append ``row`` (a ``step`` and numbers); a column the header lacks is left out, None is left empty."""
        if self.columns is None:
            self.columns = self._header()
            if self.columns is None:
                self.columns = ["step", *(key for key in row if key != "step")]
                with open(self.path, "w", newline="") as handle:
                    csv.writer(handle).writerow(self.columns)
        cells = (row.get(column, float("nan")) for column in self.columns[1:])
        values = [str(int(row["step"]))] + ["" if value is None else f"{float(value):.6g}" for value in cells]
        with open(self.path, "a", newline="") as handle:
            csv.writer(handle).writerow(values)

    def rows(self) -> list[dict[str, int | float | None]]:
        """The rows logged so far, as :meth:`append` wrote them: ``step`` an int, empty cells None."""
        if not self.path.is_file():
            return []
        with open(self.path, newline="") as handle:
            return [{column: (int(value) if column == "step" else float(value) if value else None)
                     for column, value in row.items()} for row in csv.DictReader(handle)]

    def truncate_after(self, step: int) -> None:
        """Drop every row logged after ``step`` (atomically; a missing file stays missing)."""
        if not self.path.is_file():
            return
        with open(self.path, newline="") as handle:
            rows = list(csv.reader(handle))
        kept = rows[:1] + [row for row in rows[1:] if row and int(float(row[0])) <= step]
        if len(kept) == len(rows):
            return
        with atomic_write(self.path, "w") as handle:
            csv.writer(handle).writerows(kept)
