"""Training augmentation with albumentations, in the form anomalib's datamodules take (``train_augmentations``).

anomalib applies ``augmentations(image, mask)`` to torchvision tensors (``tv_tensors.Image`` [C, H, W] float in
[0, 1], ``tv_tensors.Mask`` [H, W]) through torchvision's v2 interface; albumentations works on numpy arrays.
``Albumentations`` is the thin bridge: one albumentations call per sample, so the image and its mask get the same
geometry. ``LineAugmentation`` is what a line changes between good parts (light, a small shift or turn), with
two kinds of defaults:

  texture  the surface has no fixed position or orientation: flips and quarter turns as well,
  part     an aligned part: only a small shift and rotation, never a flip (a mirrored part may be a defect).

In a config::

    data:
      init_args:
        train_augmentations:
          class_path: ganad_plugin.augmentation.LineAugmentation
          init_args: {kind: texture}
"""

from __future__ import annotations

from typing import Any

import albumentations as A  # noqa: N812
import cv2
import numpy as np
import torch
from torchvision import tv_tensors
from torchvision.transforms.v2 import Transform

KINDS = ("texture", "part")


class Albumentations(Transform):
    """Apply an albumentations transform to an image and (optionally) its mask with the same random draw.

    Args:
        transform: any albumentations transform or ``A.Compose``; it gets ``image`` as float32 HWC in [0, 1]
            and ``mask`` as uint8 HW.
    """

    def __init__(self, transform: A.BasicTransform | A.Compose) -> None:
        super().__init__()
        self.transform = transform

    def forward(self, *inputs: Any) -> Any:
        flat = inputs[0] if len(inputs) == 1 and isinstance(inputs[0], tuple | list) else inputs
        images = [i for i, item in enumerate(flat) if isinstance(item, torch.Tensor) and not isinstance(item, tv_tensors.Mask)]
        masks = [i for i, item in enumerate(flat) if isinstance(item, tv_tensors.Mask)]
        if len(images) != 1 or len(masks) > 1:
            msg = f"Albumentations takes one image and at most one mask, got {[type(item).__name__ for item in flat]}"
            raise TypeError(msg)
        image = flat[images[0]]
        if image.ndim != 3:
            msg = f"Albumentations expects an image [C, H, W], got shape {tuple(image.shape)}"
            raise ValueError(msg)
        arguments = {"image": image.permute(1, 2, 0).float().cpu().numpy()}
        if masks:
            arguments["mask"] = flat[masks[0]].cpu().numpy().astype(np.uint8)
        result = self.transform(**arguments)
        out = list(flat)
        pixels = torch.from_numpy(np.ascontiguousarray(result["image"])).permute(2, 0, 1).clamp(0, 1).to(image.dtype)
        out[images[0]] = tv_tensors.wrap(pixels, like=image) if isinstance(image, tv_tensors.TVTensor) else pixels
        if masks:
            mask = flat[masks[0]]
            out[masks[0]] = tv_tensors.Mask(torch.from_numpy(np.ascontiguousarray(result["mask"])).to(mask.dtype))
        return out[0] if len(out) == 1 else tuple(out)


class LineAugmentation(Albumentations):
    """What changes between good parts on a line: brightness and contrast, a small shift, scale and turn.

    Args:
        kind: "texture" (flips and quarter turns too) or "part" (aligned: no flips).
        brightness: the largest change of brightness, as a share of the full range.
        contrast: the largest change of contrast, as a share.
        shift: the largest shift, as a share of the image side.
        rotate_deg: the largest turn, in degrees.
        scale: the largest change of scale, as a share.
        probability: how often the geometric and the photometric change are each applied.
    """

    def __init__(
        self,
        kind: str = "part",
        brightness: float = 0.1,
        contrast: float = 0.1,
        shift: float = 0.03,
        rotate_deg: float = 5.0,
        scale: float = 0.03,
        probability: float = 0.5,
    ) -> None:
        if kind not in KINDS:
            msg = f"LineAugmentation kind must be one of {KINDS}, got {kind!r}"
            raise ValueError(msg)
        for name, value in {"brightness": brightness, "contrast": contrast, "shift": shift, "scale": scale}.items():
            if not 0 <= value < 1:
                msg = f"LineAugmentation {name} must lie in [0, 1), got {value}"
                raise ValueError(msg)
        steps: list[A.BasicTransform] = []
        if kind == "texture":
            steps += [A.HorizontalFlip(), A.VerticalFlip(), A.RandomRotate90()]
        steps += [
            A.Affine(
                translate_percent=(-shift, shift), rotate=(-rotate_deg, rotate_deg), scale=(1 - scale, 1 + scale),
                # a shifted part's edge repeats its border (its background); a texture's is mirrored
                border_mode=cv2.BORDER_REPLICATE if kind == "part" else cv2.BORDER_REFLECT_101, p=probability,
            ),
            A.RandomBrightnessContrast(brightness_limit=brightness, contrast_limit=contrast, p=probability),
        ]
        super().__init__(A.Compose(steps))
        self.kind = kind
