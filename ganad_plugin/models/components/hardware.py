"""What the CPU a fit runs on can do fast."""

from __future__ import annotations

from functools import cache

import torch


@cache
def cpu_has_bf16() -> bool:
    """Whether this CPU has bf16 arithmetic units (AVX-512 BF16 or AMX): elsewhere bf16 is emulated, and slower."""
    return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
