"""Where ``ganad infer`` gets its images: a file, a folder, a video file, a camera, or a watched folder.

Every source yields ``Frame``s in order. A frame that cannot be read carries an ``InputError`` instead of
pixels, so that one bad file is reported by name and the run goes on with the others.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from .images import InputError, image_paths, list_images, read_rgb, to_rgb

VIDEO_SUFFIXES = {".mp4", ".avi", ".mov", ".mkv", ".m4v", ".mpg", ".mpeg", ".wmv"}


@dataclass
class Frame:
    """One image to inspect: ``name`` is what results.jsonl calls it, ``overlay_name`` its overlay's relative path."""

    name: str
    overlay_name: Path
    image: np.ndarray | None = None
    error: InputError | None = None
    file_mtime_ns: int | None = None  # a file's modification time when read (a replaced file is a new image)


class Source:
    """An iterable of frames with a known length where there is one (for the progress line)."""

    kind = "images"

    def __init__(self, frames: Callable[[], Iterator[Frame]], total: int | None) -> None:
        self._frames = frames
        self.total = total
        self.paths: list[Path] = []  # image files: their paths and the folder they are named relative to
        self.root: Path | None = None

    def __iter__(self) -> Iterator[Frame]:
        return self._frames()


def overlay_name(path: Path, root: Path) -> Path:
    """The overlay's path relative to the overlay folder: the image's relative path with ``.png`` appended, so
    that ``a.jpg`` and ``a.png`` get distinct overlays (``a.jpg.png``, ``a.png.png``)."""
    relative = path.relative_to(root) if path.is_relative_to(root) else Path(path.name)
    return relative.with_name(relative.name + ".png")


def _file_frame(path: Path, root: Path, mtime_ns: int | None = None) -> Frame:
    if mtime_ns is None:
        try:
            mtime_ns = path.stat().st_mtime_ns
        except OSError:
            mtime_ns = None
    try:
        return Frame(str(path), overlay_name(path, root), image=read_rgb(path), file_mtime_ns=mtime_ns)
    except InputError as error:
        return Frame(str(path), overlay_name(path, root), error=error, file_mtime_ns=mtime_ns)


def image_files(paths: list[Path], root: Path) -> Source:
    source = Source(lambda: (_file_frame(path, root) for path in paths), len(paths))
    source.paths, source.root = paths, root
    return source


def video(capture_target: str | int, name: str, max_frames: int | None = None) -> Source:
    """Frames of a video file or a camera (an integer index), named ``<name>#<frame number>``."""
    capture = cv2.VideoCapture(capture_target)
    if not capture.isOpened():
        what = f"camera {capture_target}" if isinstance(capture_target, int) else f"{capture_target}"
        msg = f"{what}: cannot be opened as a video source (missing file, unsupported codec or no such camera)"
        raise InputError(msg)
    count = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
    total = count if count > 0 else None
    if max_frames is not None:
        total = max_frames if total is None else min(total, max_frames)

    def frames() -> Iterator[Frame]:
        index = 0
        try:
            while max_frames is None or index < max_frames:
                ok, bgr = capture.read()
                if not ok:
                    return
                frame_name = f"{name}#{index:06d}"
                yield Frame(frame_name, Path(name) / f"frame_{index:06d}.png", image=to_rgb(bgr, frame_name))
                index += 1
        finally:
            capture.release()

    source = Source(frames, total)
    source.kind = "frames"
    return source


def _stat_images(folder: Path) -> dict[Path, tuple[int, int]]:
    """(size, modification time in ns) of every image file under ``folder`` now; vanished files left out."""
    stats = {}
    for path in image_paths(folder):
        try:
            stat = path.stat()
        except OSError:
            continue
        stats[path] = (stat.st_size, stat.st_mtime_ns)
    return stats


def watched_folder(
    folder: Path,
    already_scored: set[tuple[str, int | None]],
    poll_interval_s: float = 1.0,
    stop_after_idle_s: float | None = None,
    give_up_after_s: float = 30.0,
    sleep: Callable[[float], None] = time.sleep,
) -> Source:
    """New image files in ``folder`` (and its sub-folders, symlinked ones too) as they appear.

    A file is read once its size and modification time are the same on two polls, and it is used only if it
    is whole (``images.incomplete``): a file still being written, even into a pre-allocated space, waits. A
    file that stays unreadable for ``give_up_after_s`` is reported as an error frame, once. A file replaced
    later (a new modification time) is a new image. Files in ``already_scored`` as (path, modification time
    in ns) are skipped. What is remembered is limited to the files now in the folder. Runs until interrupted,
    or until nothing new has arrived for ``stop_after_idle_s`` seconds.
    """
    if not folder.is_dir():
        msg = f"{folder}: not a folder (--watch needs a folder)"
        raise InputError(msg)
    give_up_polls = max(1, int(np.ceil(give_up_after_s / poll_interval_s)))

    def frames() -> Iterator[Frame]:
        handled = {(Path(path), mtime) for path, mtime in already_scored}
        previous: dict[Path, tuple[int, int]] = {}
        failing_since: dict[tuple[Path, int], int] = {}  # (path, mtime) -> poll of its first failed read
        poll, idle_s = 0, 0.0
        while stop_after_idle_s is None or idle_s < stop_after_idle_s:
            current = _stat_images(folder)
            delivered = False
            for path, (size, mtime) in current.items():
                if (path, mtime) in handled or previous.get(path) != (size, mtime):
                    continue  # done already, new, or still changing
                frame = _file_frame(path, folder, mtime)
                if frame.error is not None:
                    first = failing_since.setdefault((path, mtime), poll)
                    if poll - first < give_up_polls:
                        continue  # maybe still being written: retry at the next poll
                    frame.error = InputError(f"{frame.error} (still so after {give_up_after_s:g} s)")
                handled.add((path, mtime))
                failing_since.pop((path, mtime), None)
                delivered = True
                yield frame
            # forget what is no longer in the folder (and earlier versions of replaced files)
            handled = {(path, mtime) for path, mtime in handled if current.get(path, (0, None))[1] == mtime}
            failing_since = {key: value for key, value in failing_since.items() if key[0] in current}
            previous = current
            poll += 1
            idle_s = 0.0 if delivered or any(
                (path, stat[1]) not in handled for path, stat in current.items()
            ) else idle_s + poll_interval_s
            sleep(poll_interval_s)

    source = Source(frames, None)
    source.kind = "watched files"
    return source


def open_source(target: str, max_frames: int | None = None) -> Source:
    """``target``: an image file, a folder of images, a video file, or a camera index such as ``0``."""
    if target.isdigit():
        return video(int(target), f"camera{target}", max_frames)
    path = Path(target)
    if path.is_dir():
        return image_files(list_images(path), path)
    if path.suffix.lower() in VIDEO_SUFFIXES:
        if not path.is_file():
            msg = f"{path}: no such video file"
            raise InputError(msg)
        return video(str(path), path.stem, max_frames)
    if not path.exists():
        msg = f"{path}: no such file or folder"
        raise InputError(msg)
    return image_files([path], path.parent)
