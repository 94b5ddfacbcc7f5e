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

from .images import IMAGE_SUFFIXES, InputError, list_images, read_rgb, to_rgb

VIDEO_SUFFIXES = {".mp4", ".avi", ".mov", ".mkv", ".m4v", ".mpg", ".mpeg", ".wmv"}


@dataclass
class Frame:
    """One image to inspect: ``name`` is what results.jsonl calls it, ``overlay_name`` its overlay's relative path."""

    name: str
    overlay_name: Path
    image: np.ndarray | None = None
    error: InputError | None = None


class Source:
    """An iterable of frames with a known length where there is one (for the progress line)."""

    kind = "images"

    def __init__(self, frames: Callable[[], Iterator[Frame]], total: int | None) -> None:
        self._frames = frames
        self.total = total

    def __iter__(self) -> Iterator[Frame]:
        return self._frames()


def _file_frame(path: Path, root: Path) -> Frame:
    relative = path.relative_to(root) if path.is_relative_to(root) else Path(path.name)
    try:
        return Frame(str(path), relative.with_suffix(".png"), image=read_rgb(path))
    except InputError as error:
        return Frame(str(path), relative.with_suffix(".png"), error=error)


def image_files(paths: list[Path], root: Path) -> Source:
    return Source(lambda: (_file_frame(path, root) for path in paths), len(paths))


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


def watched_folder(
    folder: Path,
    already_done: set[str],
    poll_interval_s: float = 1.0,
    stop_after_idle_s: float | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> Source:
    """New image files in ``folder`` as they appear (a file counts once its size is the same on two polls, so
    a half-written file is not read). Files named in ``already_done`` are skipped. Runs until interrupted, or
    until nothing new has arrived for ``stop_after_idle_s`` seconds."""
    if not folder.is_dir():
        msg = f"{folder}: not a folder (--watch needs a folder)"
        raise InputError(msg)

    def frames() -> Iterator[Frame]:
        seen_sizes: dict[Path, int] = {}
        idle_s = 0.0
        while stop_after_idle_s is None or idle_s < stop_after_idle_s:
            ready = []
            for path in sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()):
                if str(path) in already_done:
                    continue
                size = path.stat().st_size
                if seen_sizes.get(path) == size:
                    ready.append(path)
                seen_sizes[path] = size
            for path in ready:
                already_done.add(str(path))
                yield _file_frame(path, folder)
            idle_s = 0.0 if ready else idle_s + poll_interval_s
            if not ready:
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
