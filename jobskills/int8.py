"""Int8 Linear layers with per-token activation scales: the ``int8`` encoder backends (see :mod:`jobskills.encoder`).

Imported only when a quantised backend is loaded (it imports torch).
"""

from __future__ import annotations

import warnings

import torch

__all__ = ["RowInt8Linear"]


class RowInt8Linear(torch.nn.Module):
    """A Linear layer in int8 whose activations are scaled per row (per token), not per tensor.

    torch's dynamic int8 Linear scales its whole input by one range, so a token's result depends on the other
    tokens of the pass, and one outlier coarsens every row. Here each row is first divided by its own largest
    magnitude, and one fixed probe row ``[1, -1, 0, ...]`` appended to every pass pins the tensor's range to
    ``[-1, 1]``: the int8 kernel then quantises every row with the same step, its int32 products are exact, and
    each output row is scaled back. A row's result depends on that row alone. Weights: int8, one scale per
    output channel.
    """

    def __init__(self, linear: torch.nn.Linear) -> None:
        super().__init__()
        weight = linear.weight.detach().float()
        scales = (weight.abs().amax(dim=1) / 127).clamp_min(1e-12).double()
        with warnings.catch_warnings():  # torch marks the quantised-tensor constructors deprecated
            warnings.simplefilter("ignore")
            qweight = torch.quantize_per_channel(weight, scales, torch.zeros(weight.shape[0], dtype=torch.long), 0,
                                                 torch.qint8)
            self._packed = torch.ops.quantized.linear_prepack(qweight, None)
        self.in_features, self.out_features = linear.in_features, linear.out_features
        self.register_buffer("bias", None if linear.bias is None else linear.bias.detach().float().clone())
        probe = torch.zeros(self.in_features)
        probe[0], probe[1 % self.in_features] = 1.0, -1.0
        self.register_buffer("probe", probe)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        flat = x.reshape(-1, self.in_features)
        n = flat.shape[0]
        scale = torch.linalg.vector_norm(flat, float("inf"), dim=-1, keepdim=True).clamp_min_(1e-12)
        rows = flat.new_empty((n + 1, self.in_features))
        torch.div(flat, scale, out=rows[:n])
        rows[n] = self.probe
        y = torch.ops.quantized.linear_dynamic(rows, self._packed, True)[:n]  # fbgemm: 7-bit activations
        y = y.mul_(scale) if self.bias is None else torch.addcmul(self.bias, y, scale)
        return y.reshape(*x.shape[:-1], self.out_features)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, int8 weights per channel, activations per row"
