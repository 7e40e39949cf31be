"""Per-patient practice records: one small JSON file per patient in the data directory.

Until patients have tables of their own (accounts), a patient's graded-practice state lives in
`<data dir>/practice/patients/<patient_id>.json`: the day's program, the level and lock of every
exercise, every progression decision with its rule and reason, the baselines (repeatable, newest
last), each session's pain ratings and outcome, and the RMDQ answers. Writes are atomic
(temporary file + rename); a file that cannot be read is set aside as `<id>.json.bad` and the
patient starts afresh (logged), so a damaged file never stops a session. Without a data
directory (`Settings()` in tests) records stay in memory.
"""

from __future__ import annotations

import contextlib
import copy
import datetime as dt
import json
import logging
import os
import tempfile
from pathlib import Path
from typing import Any

from api.practice_models import PATIENT_ID_RE

log = logging.getLogger(__name__)

RECORD_VERSION = 1


class PatientIdError(ValueError):
    """A patient id that cannot name a record."""


def check_patient_id(patient_id: str) -> str:
    if not isinstance(patient_id, str) or not PATIENT_ID_RE.match(patient_id):
        raise PatientIdError(f"patient id must be 1-64 letters, digits, '_', '-' or '.', "
                             f"starting with a letter or digit; got {patient_id!r}")
    return patient_id


def today() -> str:
    return dt.date.today().isoformat()


def now_iso() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


def new_record(patient_id: str) -> dict[str, Any]:
    return {"version": RECORD_VERSION, "patient_id": patient_id, "created_at": now_iso(),
            "start_date": today(), "program": None, "progress": {}, "baselines": [],
            "decisions": [], "sessions": [], "rmdq": []}


class PatientStore:
    """Records by patient id (see module docstring); `load` returns a copy to change and `save`."""

    def __init__(self, data_dir: Path | str | None) -> None:
        self.directory = None if data_dir is None else Path(data_dir) / "practice" / "patients"
        self._memory: dict[str, dict[str, Any]] = {}

    def _path(self, patient_id: str) -> Path:
        assert self.directory is not None
        return self.directory / f"{check_patient_id(patient_id)}.json"

    def exists(self, patient_id: str) -> bool:
        check_patient_id(patient_id)
        if self.directory is None:
            return patient_id in self._memory
        return self._path(patient_id).exists()

    def load(self, patient_id: str) -> dict[str, Any]:
        check_patient_id(patient_id)
        if self.directory is None:
            return copy.deepcopy(self._memory.get(patient_id) or new_record(patient_id))
        path = self._path(patient_id)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            if not isinstance(data, dict) or data.get("version") != RECORD_VERSION:
                raise ValueError(f"not a version {RECORD_VERSION} patient record")
        except FileNotFoundError:
            return new_record(patient_id)
        except (OSError, ValueError) as exc:
            log.error("patient record %s unreadable (%s); set aside as .bad", path, exc)
            with contextlib.suppress(OSError):
                os.replace(path, path.with_suffix(".json.bad"))
            return new_record(patient_id)
        fresh = new_record(patient_id)
        fresh.update(data)
        return fresh

    def save(self, record: dict[str, Any]) -> None:
        pid = check_patient_id(record["patient_id"])
        if self.directory is None:
            self._memory[pid] = copy.deepcopy(record)
            return
        path = self._path(pid)
        path.parent.mkdir(parents=True, exist_ok=True)
        text = json.dumps(record, indent=1, sort_keys=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{pid}.", suffix=".tmp", dir=path.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                f.write(text)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise

    def patients(self) -> list[str]:
        if self.directory is None:
            return sorted(self._memory)
        if not self.directory.exists():
            return []
        return sorted(p.stem for p in self.directory.glob("*.json"))
