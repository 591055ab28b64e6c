"""The answers file: ``paths.labels_file`` (or the CSV ``--suggest`` wrote), read as rows
and written back one answer at a time, atomically. The page is a way to fill this file,
never a second store."""

from __future__ import annotations

import csv
import io
import threading
from dataclasses import dataclass, field
from pathlib import Path

from slapp.errors import StageError
from slapp.spec import NONE
from slapp.store.atomic import atomic_write


@dataclass
class AnswersFile:
    """The rows of ``path`` (its columns as they are; ``label`` is the answer)."""

    path: Path
    columns: list[str] = field(default_factory=list)
    rows: list[dict] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @classmethod
    def read(cls, path: Path) -> AnswersFile:
        try:
            with open(path, newline="", encoding="utf-8-sig") as f:
                reader = csv.DictReader(f)
                rows = [r for r in reader if (r.get("path") or "").strip()]
                columns = list(reader.fieldnames or [])
        except FileNotFoundError:
            raise StageError(f"Answers file '{path}' does not exist. Expected the CSV that "
                             "train_crnn.py or predict_track.py --suggest writes.") from None
        except (OSError, UnicodeDecodeError, csv.Error) as exc:
            raise StageError(f"Answers file '{path}' cannot be read ({exc}). Expected a UTF-8 "
                             "CSV with columns path,label.") from None
        if "path" not in columns or "label" not in columns:
            raise StageError(f"Answers file '{path}' has no 'path' and 'label' columns "
                             f"(got {', '.join(columns) or 'nothing'}). Expected the CSV "
                             "that train_crnn.py or predict_track.py --suggest writes.")
        return cls(path=path, columns=columns, rows=rows)

    def answer(self, index: int, label: str, classes: list[str]) -> None:
        """Set row ``index``'s label (a class, ``none``, or "" to skip) and write the file."""
        if label and label not in classes and label != NONE:
            raise ValueError(f"label {label!r} is not a class; expected one of "
                             f"{', '.join(classes)}, {NONE} or nothing")
        if not 0 <= index < len(self.rows):
            raise IndexError(index)
        with self._lock:
            self.rows[index]["label"] = label
            buf = io.StringIO()
            writer = csv.DictWriter(buf, fieldnames=self.columns, extrasaction="ignore",
                                    lineterminator="\n")
            writer.writeheader()
            writer.writerows(self.rows)
            data = buf.getvalue().encode("utf-8")
            atomic_write(self.path, lambda f: f.write(data))

    def track(self, index: int) -> Path:
        """The audio file of row ``index`` (relative paths: from the file's folder)."""
        raw = Path(self.rows[index]["path"].strip())
        return raw if raw.is_absolute() else self.path.parent / raw
