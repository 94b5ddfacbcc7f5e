"""What the models do differently when Lightning trains them in several processes (``--trainer.strategy ddp``).

DDP averages the gradients, so the networks' weights stay the same in every process. What a model decides or
accumulates outside the gradients must be made the same too, or each process would end with its own model and the
one that writes the checkpoint (rank 0) would know only its share of the data:

- a decision taken on a process's own batch (GANomaly re-initialising a collapsed discriminator) is taken when any
  process asks for it, and the new weights are rank 0's (``any_process``, ``broadcast_from_first``);
- statistics gathered from the validation batches each process scores (the good parts' scores behind the
  thresholds) are pooled from all processes (``gathered``);
- the feature memory and the evidence scales are fitted by every process on all training images (not a shard),
  then copied from rank 0, so that they match to the bit (``broadcast_from_first``).

With one process every function returns its input unchanged.
"""

from __future__ import annotations

import torch
from torch import distributed, nn


def in_several_processes() -> bool:
    return distributed.is_available() and distributed.is_initialized() and distributed.get_world_size() > 1


def any_process(flag: bool) -> bool:
    """True when ``flag`` is true in at least one process."""
    if not in_several_processes():
        return flag
    value = torch.tensor([1.0 if flag else 0.0])
    distributed.all_reduce(value, op=distributed.ReduceOp.MAX)
    return bool(value.item() > 0)


def broadcast_from_first(module: nn.Module) -> None:
    """Copy rank 0's parameters and buffers into every other process's ``module`` (in place)."""
    if not in_several_processes():
        return
    with torch.no_grad():
        for tensor in [*module.parameters(), *module.buffers()]:
            # a buffer may be non-contiguous (channels-last convolutions' weights are broadcast as they are)
            data = tensor.data if tensor.data.is_contiguous() else tensor.data.contiguous()
            distributed.broadcast(data, src=0)
            if data is not tensor.data:
                tensor.data.copy_(data)


def gathered(values: torch.Tensor) -> torch.Tensor:
    """A 1-D tensor of every process's ``values`` (1-D, any length), rank 0's first."""
    if not in_several_processes():
        return values
    parts: list[torch.Tensor | None] = [None] * distributed.get_world_size()
    distributed.all_gather_object(parts, values.cpu())
    return torch.cat([part for part in parts if part is not None])
