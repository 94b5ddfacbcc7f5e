"""``results.jsonl``: the line's record of every image scored, safe against crashes, full disks and restarts.

- Each line is one JSON object written with one ``write``, flushed and synced to disk before the next image.
  A line cut short by a crash or a power cut is the last one; opening the log cuts it off (it is kept in
  ``results.jsonl.partial`` for a person to see) so that the next line starts on a line of its own.
- A write that fails (a full disk) is rolled back to the last complete line and raised as ``ResultLogError``
  naming the file, so the log never holds a half line.
- Only strict JSON is written: a non-finite number raises instead of becoming the invalid token ``NaN``.
- ``scored`` gives the (path, file modification time, model) of the images already scored, so that a restart
  continues where the crash left off: no duplicates, no gaps; an image replaced since, or scored by another
  model, is scored again. Lines with an ``error`` do not count (the file is retried).
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

DoneKey = tuple[str, int | None, str]

__all__ = ["DoneKey", "ResultLog", "ResultLogError", "timestamp"]


class ResultLogError(OSError):
    """``results.jsonl`` cannot be opened or written; the message names the file and the cause."""


def timestamp() -> str:
    """Local time with its UTC offset, to the millisecond (ISO 8601)."""
    now = time.time()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(now)) + f".{int(now % 1 * 1000):03d}" + time.strftime(
        "%z", time.localtime(now)
    )


def done_key(record: dict) -> DoneKey | None:
    """What makes a line "this image, as it was on disk, scored by this model"; None for error lines."""
    if "error" in record or "path" not in record:
        return None
    return str(record["path"]), record.get("file_mtime_ns"), str(record.get("model", ""))


class ResultLog:
    """Append-only JSON-lines log at ``path`` (its folder must exist)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.repaired_bytes = self._repair()
        try:
            self.handle = open(self.path, "ab")  # noqa: SIM115  closed by close()
        except OSError as error:
            msg = f"{self.path}: cannot be written ({error.strerror or error})"
            raise ResultLogError(msg) from error

    def _repair(self) -> int:
        """Cut off a last line that has no newline (a write interrupted by a crash); returns the bytes cut."""
        try:
            size = self.path.stat().st_size
        except FileNotFoundError:
            return 0
        if size == 0:
            return 0
        with open(self.path, "rb+") as handle:
            handle.seek(max(0, size - 1))
            if handle.read(1) == b"\n":
                return 0
            # find the end of the last complete line, reading back in blocks
            end, block = size, 1 << 16
            keep = 0
            while end > 0:
                start = max(0, end - block)
                handle.seek(start)
                chunk = handle.read(end - start)
                newline = chunk.rfind(b"\n")
                if newline >= 0:
                    keep = start + newline + 1
                    break
                end = start
            handle.seek(keep)
            partial = handle.read()
            self.path.with_name(self.path.name + ".partial").write_bytes(partial + b"\n")
            handle.truncate(keep)
            handle.flush()
            os.fsync(handle.fileno())
        return size - keep

    def scored(self, paths: set[str]) -> set[DoneKey]:
        """The done keys of the log's lines about ``paths`` (memory bounded by the images at hand, not the log)."""
        keys: set[DoneKey] = set()
        if not self.path.is_file():
            return keys
        with open(self.path, encoding="utf-8", errors="replace") as lines:
            for line in lines:
                try:
                    key = done_key(json.loads(line))
                except (ValueError, TypeError, AttributeError):
                    continue
                if key is not None and key[0] in paths:
                    keys.add(key)
        return keys

    def append(self, record: dict) -> None:
        """Write ``record`` as one line, durably; on failure leave the log as it was and raise ``ResultLogError``."""
        try:
            data = (json.dumps(record, allow_nan=False) + "\n").encode("utf-8")
        except ValueError as error:
            msg = f"{self.path}: refusing to write a non-finite number for {record.get('path')!r} ({error})"
            raise ValueError(msg) from error
        position = self.handle.tell()
        try:
            self.handle.write(data)
            self.handle.flush()
            os.fsync(self.handle.fileno())
        except OSError as error:
            self._roll_back(position)
            msg = f"{self.path}: writing the result of {record.get('path')!r} failed ({error.strerror or error}); " \
                  "the log ends with the last complete line"
            raise ResultLogError(msg) from error

    def _roll_back(self, position: int) -> None:
        try:
            self.handle.close()
        except OSError:
            pass  # the buffered bytes that failed to reach the disk are dropped with the handle
        try:
            with open(self.path, "rb+") as handle:
                handle.truncate(position)
        except OSError:
            pass  # if even that fails, the next open cuts the partial line off (``_repair``)
        self.handle = open(self.path, "ab")  # noqa: SIM115

    def close(self) -> None:
        try:
            self.handle.close()
        except OSError:
            pass
