"""``ganad infer`` under load and faults: thousands of images through a folder and a watched inbox, killed with
SIGKILL and restarted, with files half-written, unreadable, vanishing and replaced; counts every result line
and follows each process's memory.

    python benchmarks/stream.py --images 5000 --out results/stream            # the figures in docs/reliability.md
    python benchmarks/stream.py --images 5000 --model path/to/model.xml       # a trained model instead

The default model is the stand-in IR (``ganad_plugin.edge.stand_in``, 256 x 256): what is measured here is the
runtime's bookkeeping (reading, results.jsonl, restarts, memory over the count), which does not depend on the
network; a trained model only makes each image slower. Exit status 1 if a result is lost or duplicated.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import cv2
import numpy as np

from ganad_plugin.edge.stand_in import stand_in_ir

SIZE_PX = 256


def make_images(count: int, seed: int) -> list[bytes]:
    """``count`` distinct PNGs: a noise texture per image, one in ten bright enough to be NG on the stand-in."""
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 120, (SIZE_PX, SIZE_PX, 3), dtype=np.uint8)
    images = []
    for index in range(count):
        image = base.copy()
        image[: 1 + index % SIZE_PX, :8] = index % 251  # differs from every other image
        if index % 10 == 0:
            image = cv2.add(image, 140)
        images.append(cv2.imencode(".png", image)[1].tobytes())
    return images


class Process:
    """A ``ganad infer`` run whose memory is sampled while it runs."""

    def __init__(self, command: list[str], log: Path) -> None:
        log.parent.mkdir(parents=True, exist_ok=True)
        self.stderr_path = log.with_name("infer.stderr")
        with open(self.stderr_path, "ab") as stderr:  # a file, not a pipe: an undrained pipe would stall the run
            self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=stderr)
        self.log = log
        self.rss_by_lines: list[tuple[int, float]] = []  # (result lines so far, RSS GiB)
        self.peak_gib = 0.0

    def sample(self) -> None:
        try:
            status = Path(f"/proc/{self.process.pid}/status").read_text()
        except OSError:
            return
        fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
        if "VmRSS" in fields:
            rss = int(fields["VmRSS"].split()[0]) / 2**20
            self.peak_gib = max(self.peak_gib, int(fields.get("VmHWM", "0 kB").split()[0]) / 2**20)
            self.rss_by_lines.append((count_lines(self.log), rss))

    def run(self, kill_at_lines: int | None = None, timeout_s: float = 3600) -> bool:
        """Wait for the end, or SIGKILL it once the log has ``kill_at_lines`` lines; True if it was killed."""
        deadline = time.monotonic() + timeout_s
        while self.process.poll() is None and time.monotonic() < deadline:
            self.sample()
            if kill_at_lines is not None and count_lines(self.log) >= kill_at_lines:
                self.process.send_signal(signal.SIGKILL)
                self.process.wait()
                return True
            time.sleep(0.05)
        if self.process.poll() is None:
            self.process.kill()
            raise TimeoutError(f"ganad infer ran over {timeout_s} s")
        if self.process.returncode not in (0, 1):
            tail = self.stderr_path.read_text(errors="replace")[-2000:]
            raise RuntimeError(f"ganad infer exited {self.process.returncode}: {tail}")
        return False


def count_lines(path: Path) -> int:
    try:
        with open(path, "rb") as handle:
            return sum(chunk.count(b"\n") for chunk in iter(lambda: handle.read(1 << 20), b""))
    except FileNotFoundError:
        return 0


def strict_records(path: Path) -> tuple[list[dict], int]:
    """(the records, the number of lines that are not strict JSON)."""
    records, invalid = [], 0
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            records.append(json.loads(line, parse_constant=lambda token: (_ for _ in ()).throw(ValueError(token))))
        except ValueError:
            invalid += 1
    return records, invalid


def memory_growth(processes: list[Process]) -> str:
    """The longest run's RSS once a tenth of its lines were written, and at its end (the count grows, the memory
    should not)."""
    longest = max(processes, key=lambda p: p.rss_by_lines[-1][0] - p.rss_by_lines[0][0] if p.rss_by_lines else 0)
    samples = longest.rss_by_lines
    first_lines, last_lines = samples[0][0], samples[-1][0]
    early = [s for s in samples if s[0] >= first_lines + (last_lines - first_lines) / 10]
    if len(early) < 2:
        return "too short to tell"
    return f"RSS {early[0][1]:.3f} GiB at line {early[0][0]}, {samples[-1][1]:.3f} GiB at line {last_lines}"


def folder_run(args: argparse.Namespace, model: Path, images: list[bytes]) -> dict:
    root = args.out / "folder"
    shutil.rmtree(root, ignore_errors=True)
    inbox = root / "in"
    inbox.mkdir(parents=True)
    for index, data in enumerate(images):
        (inbox / f"{index:06d}.png").write_bytes(data)
    log = root / "out" / "results.jsonl"
    command = [sys.executable, "-m", "ganad_plugin.cli", "infer", "--model", str(model), "--input", str(inbox),
               "--output", str(root / "out"), "--overlays", "ng", "--batch-size", "1"]
    rng = random.Random(args.seed)
    kill_points = sorted(rng.sample(range(10, len(images) - 10), args.kills))
    processes, kills, started = [], 0, time.perf_counter()
    for point in [*kill_points, None]:
        process = Process(command, log)
        processes.append(process)
        kills += process.run(kill_at_lines=point)
    seconds = time.perf_counter() - started
    records, invalid = strict_records(log)
    paths = Counter(record["path"] for record in records)
    expected = {str(inbox / f"{index:06d}.png") for index in range(len(images))}
    return {
        "images": len(images), "kills": kills, "lines": len(records), "invalid_lines": invalid,
        "lost": len(expected - set(paths)), "duplicates": sum(n - 1 for n in paths.values()),
        "errors": sum("error" in record for record in records),
        "ng": sum(bool(record.get("label")) for record in records),
        "seconds": seconds, "peak_rss_gib": max(p.peak_gib for p in processes), "growth": memory_growth(processes),
    }


def watch_run(args: argparse.Namespace, model: Path, images: list[bytes]) -> dict:
    """A writer drops the images into an inbox while ``ganad infer --watch`` runs; some files are written slowly,
    some are garbage, some vanish, some are replaced after being scored; the watcher is killed and restarted."""
    root = args.out / "watch"
    shutil.rmtree(root, ignore_errors=True)
    inbox = root / "inbox"
    inbox.mkdir(parents=True)
    log = root / "out" / "results.jsonl"
    rng = random.Random(args.seed + 1)
    plan = {"slow": set(), "garbage": set(), "vanish": set(), "replace": set()}
    for index in range(len(images)):
        draw = rng.random()
        kind = "slow" if draw < 0.02 else "garbage" if draw < 0.03 else "vanish" if draw < 0.04 else \
            "replace" if draw < 0.05 else None
        if kind:
            plan[kind].add(index)

    def writer() -> None:
        for index, data in enumerate(images):
            path = inbox / f"{index // 1000:02d}" / f"{index:06d}.png"
            path.parent.mkdir(exist_ok=True)
            if index in plan["slow"]:  # a slow writer: half now, the rest two polls later
                path.write_bytes(data[: len(data) // 2])
                threading.Timer(0.5, path.write_bytes, args=(data,)).start()
            elif index in plan["garbage"]:
                path.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(rng.randrange(256) for _ in range(64)))
            elif index in plan["vanish"]:
                path.write_bytes(data)
                threading.Timer(0.05, lambda p=path: p.unlink(missing_ok=True)).start()
            else:
                path.write_bytes(data)
            time.sleep(1 / args.watch_rate)
        time.sleep(1.5)
        for index in sorted(plan["replace"]):  # a part photographed again under the same name
            path = inbox / f"{index // 1000:02d}" / f"{index:06d}.png"
            path.write_bytes(images[(index + 1) % len(images)])
            os.utime(path, ns=(time.time_ns(), time.time_ns() + 10**9))

    command = [sys.executable, "-m", "ganad_plugin.cli", "infer", "--model", str(model), "--input", str(inbox),
               "--output", str(root / "out"), "--watch", "--poll-interval", "0.2", "--give-up-after", "1",
               "--stop-after-idle", "4", "--overlays", "none"]
    thread = threading.Thread(target=writer)
    started = time.perf_counter()
    thread.start()
    processes = [Process(command, log)]
    kills = int(processes[0].run(kill_at_lines=len(images) // 3))
    processes.append(Process(command, log))
    processes[-1].run()
    thread.join()
    seconds = time.perf_counter() - started
    records, invalid = strict_records(log)
    scored = Counter((r["path"], r.get("file_mtime_ns")) for r in records if "error" not in r)
    error_paths = Counter(r["path"] for r in records if "error" in r)

    def name(index: int) -> str:
        return str(inbox / f"{index // 1000:02d}" / f"{index:06d}.png")

    must_score = {name(i) for i in range(len(images)) if i not in plan["garbage"] | plan["vanish"]}
    scored_paths = Counter(path for path, _ in scored)
    return {
        "images": len(images), "kills": kills, "lines": len(records), "invalid_lines": invalid,
        "lost": len(must_score - set(scored_paths)),
        "duplicates": sum(n - 1 for n in scored.values()),
        "replaced_scored_twice": sum(scored_paths[name(i)] == 2 for i in plan["replace"]),
        "replaced": len(plan["replace"]), "slow": len(plan["slow"]),
        "garbage_reported": sum(name(i) in error_paths for i in plan["garbage"]), "garbage": len(plan["garbage"]),
        "vanished": len(plan["vanish"]),
        "seconds": seconds, "peak_rss_gib": max(p.peak_gib for p in processes), "growth": memory_growth(processes),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=5000)
    parser.add_argument("--out", type=Path, default=Path("results/stream"))
    parser.add_argument("--model", type=Path, default=None, help="an exported model.xml (default: the stand-in IR)")
    parser.add_argument("--kills", type=int, default=5, help="SIGKILLs during the folder run")
    parser.add_argument("--watch-rate", type=float, default=150.0, help="images a second dropped into the inbox")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--modes", nargs="+", choices=["folder", "watch"], default=["folder", "watch"])
    args = parser.parse_args()
    model = args.model or stand_in_ir(args.out / "stand_in", size_px=SIZE_PX)
    images = make_images(args.images, args.seed)
    print(f"{args.images} images, model {model}", flush=True)
    runs = {}
    if "folder" in args.modes:
        runs["folder"] = folder_run(args, model, images)
        print(f"folder: {json.dumps(runs['folder'])}", flush=True)
    if "watch" in args.modes:
        runs["--watch"] = watch_run(args, model, images)
        print(f"watch:  {json.dumps(runs['--watch'])}", flush=True)
    print("\n| run | images | SIGKILLs | result lines | invalid lines | lost | duplicates | peak RSS GiB | seconds |")
    print("|---|---|---|---|---|---|---|---|---|")
    for label, figures in runs.items():
        print(f"| {label} | {figures['images']} | {figures['kills']} | {figures['lines']} | {figures['invalid_lines']} "
              f"| {figures['lost']} | {figures['duplicates']} | {figures['peak_rss_gib']:.3f} | {figures['seconds']:.0f} |")
    print("\nmemory: " + "; ".join(f"{label}: {figures['growth']}" for label, figures in runs.items()))
    if watch := runs.get("--watch"):
        print(f"--watch faults: {watch['slow']} written slowly (all scored once complete), {watch['garbage_reported']} "
              f"of {watch['garbage']} unreadable reported, {watch['vanished']} vanished, "
              f"{watch['replaced_scored_twice']} of {watch['replaced']} replaced files scored again")
    bad = any(f["lost"] or f["duplicates"] or f["invalid_lines"] for f in runs.values())
    return 1 if bad else 0

if __name__ == "__main__":
    sys.exit(main())
