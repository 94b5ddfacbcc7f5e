"""A fit killed with SIGKILL and resumed from its resume point ends where an uninterrupted fit does.

    python benchmarks/resume.py --model GANomaly --category weave --out results/resume    # docs/reliability.md

Runs, with the model's config and the same seed: (1) an uninterrupted `ganad train`; (2) the same command killed
with SIGKILL once its resume point (weights/lightning/resume.ckpt, every 5 epochs) has been written
``--kill-after-saves`` times, then `ganad fit --ckpt_path <resume.ckpt>` and `ganad test` on the resumed fit's
model.ckpt; (3) an uninterrupted run with another seed, for the run-to-run spread the difference is held against.
Prints the test metrics of the three and the differences.
"""

from __future__ import annotations

import argparse
import signal
import subprocess
import sys
import time
from pathlib import Path

from sample_sets import REPO, TEST_METRICS, category_root, newest_first, parse_metrics, train_with_cli


def cli(subcommand: str, model: str, root: Path, category: str, out: Path, seed: int, *extra: str) -> list[str]:
    return [sys.executable, "-m", "ganad_plugin.cli", subcommand, "--config",
            str(REPO / "configs" / f"{model.lower()}.yaml"), "--data.root", str(root.parent), "--data.category",
            category, "--default_root_dir", str(out), "--seed_everything", str(seed),
            "--trainer.enable_progress_bar", "false", *extra]


def killed_and_resumed(args: argparse.Namespace, root: Path) -> tuple[dict[str, float], int]:
    out = args.out / "killed"
    process = subprocess.Popen(cli("train", args.model, root, args.category, out, args.seed), cwd=REPO,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    saves, last_mtime, resume = 0, None, None
    while process.poll() is None and saves < args.kill_after_saves:
        found = sorted(out.glob("**/weights/lightning/resume.ckpt"))
        if found and found[0].stat().st_mtime_ns != last_mtime:
            resume, last_mtime, saves = found[0], found[0].stat().st_mtime_ns, saves + 1
        time.sleep(0.5)
    if process.poll() is not None:
        raise SystemExit("the fit ended before it could be killed; lower --kill-after-saves")
    process.send_signal(signal.SIGKILL)
    process.wait()
    print(f"killed after {saves} resume points ({resume})", flush=True)
    resumed_out = args.out / "resumed"
    fit = subprocess.run(cli("fit", args.model, root, args.category, resumed_out, args.seed, "--ckpt_path", str(resume)),
                         cwd=REPO, capture_output=True, text=True, check=False)
    resumed_out.mkdir(parents=True, exist_ok=True)
    (resumed_out / "fit.log").write_text(fit.stdout + fit.stderr)
    if fit.returncode:
        raise SystemExit(f"resumed fit failed: {(fit.stdout + fit.stderr)[-3000:]}")
    checkpoint = newest_first(resumed_out)[0]
    test = subprocess.run(cli("test", args.model, root, args.category, args.out / "resumed_test", args.seed,
                              "--ckpt_path", str(checkpoint)), cwd=REPO, capture_output=True, text=True, check=False)
    (resumed_out / "test.log").write_text(test.stdout + test.stderr)
    return parse_metrics(test.stdout + test.stderr), saves


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="GANomaly", choices=["GANomaly", "EGBAD", "AnoGAN"])
    parser.add_argument("--category", default="weave")
    parser.add_argument("--out", type=Path, default=REPO / "results" / "resume")
    parser.add_argument("--seed", type=int, default=42, help="the configs' seed_everything")
    parser.add_argument("--other-seed", type=int, default=43)
    parser.add_argument("--kill-after-saves", type=int, default=4, help="resume points written before the kill")
    args = parser.parse_args()
    root = category_root(args.category)
    _, whole_s, whole = train_with_cli(args.model, args.category, root.parent, args.out / "whole", seed=args.seed)
    print(f"uninterrupted: {whole} ({whole_s:.0f} s)", flush=True)
    resumed, saves = killed_and_resumed(args, root)
    print(f"killed after {saves} resume points and resumed: {resumed}", flush=True)
    _, _, other = train_with_cli(args.model, args.category, root.parent, args.out / "other_seed", seed=args.other_seed)
    print(f"uninterrupted, seed {args.other_seed}: {other}", flush=True)
    print(f"\n| {args.model} {args.category} | " + " | ".join(TEST_METRICS) + " |")
    print("|---|" + "---|" * len(TEST_METRICS))
    for label, metrics in ((f"uninterrupted, seed {args.seed}", whole), (f"killed at resume point {saves}, resumed",
                                                                          resumed), (f"uninterrupted, seed {args.other_seed}", other)):
        print(f"| {label} | " + " | ".join(f"{metrics.get(name, float('nan')):.3f}" for name in TEST_METRICS) + " |")
    print("| resumed - uninterrupted | " + " | ".join(
        f"{resumed.get(n, float('nan')) - whole.get(n, float('nan')):+.3f}" for n in TEST_METRICS) + " |")
    print(f"| seed {args.other_seed} - seed {args.seed} | " + " | ".join(
        f"{other.get(n, float('nan')) - whole.get(n, float('nan')):+.3f}" for n in TEST_METRICS) + " |")


if __name__ == "__main__":
    main()
