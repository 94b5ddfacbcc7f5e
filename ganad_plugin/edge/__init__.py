"""The edge runtime: OpenVINO inference on exported ganad-plugin models, with numpy and OpenCV only.

Nothing here imports torch or anomalib (a test proves it), so ``pip install ganad-plugin`` without extras
is enough to run ``ganad infer`` on an industrial PC.
"""

from .runtime import EdgeInferencer, ImageResult, InputError, ModelFormatError

__all__ = ["EdgeInferencer", "ImageResult", "InputError", "ModelFormatError"]
