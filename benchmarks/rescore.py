"""Score a checkpoint's weights with this checkout's code: do two builds give the same maps for the same weights?

    python benchmarks/rescore.py --model GANomaly --category weave --ckpt <model.ckpt> --save before.npz
    python benchmarks/rescore.py --model GANomaly --category weave --ckpt <model.ckpt> --compare before.npz

Builds the model with its constructor defaults, loads the checkpoint's weights and buffers (feature memory,
evidence scales) strictly, and scores the category's whole test split with the torch model (raw scores and maps,
before anomalib's normalisation). Prints image and pixel AUROC; with --save writes the scores and maps, with
--compare prints the largest difference from a saved run (of another build, on the same checkpoint). Results:
docs/accuracy.md.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from sample_sets import checkpoint_parser, load_test_set

import ganad_plugin.models
from ganad_plugin.edge.metrics import auroc


def main() -> None:
    parser = checkpoint_parser(__doc__)
    parser.add_argument("--save", type=Path)
    parser.add_argument("--compare", type=Path)
    args = parser.parse_args()
    torch.set_num_threads(1)
    model = getattr(ganad_plugin.models, args.model)()
    model.load_state_dict(torch.load(args.ckpt, map_location="cpu", weights_only=False)["state_dict"], strict=True)
    net = model.model.eval()
    images, labels, masks = load_test_set(Path(args.root) / args.category, 10**6, 256)
    with torch.inference_mode():
        outputs = [net(images[start : start + 8]) for start in range(0, len(images), 8)]
    scores = torch.cat([output.pred_score for output in outputs]).numpy()
    maps = torch.cat([output.anomaly_map for output in outputs])[:, 0].numpy()
    print(f"{args.model} {args.category} {args.ckpt}: {len(images)} test images, image AUROC "
          f"{auroc(scores, labels):.4f}, pixel AUROC {auroc(maps, masks):.4f}")
    if args.save:
        np.savez_compressed(args.save, scores=scores, maps=maps)
    if args.compare:
        other = np.load(args.compare)
        print(f"largest difference from {args.compare}: score {np.abs(scores - other['scores']).max():.2e} "
              f"(scores span {np.ptp(scores):.2f}), map {np.abs(maps - other['maps']).max():.2e}")


if __name__ == "__main__":
    main()
