"""`VideoConv3d`: nn.Conv3d with faster CPU paths for the small feature maps of CPU-scale networks.

The same layer (class, parameters, state-dict keys, init) and the same function; only how the CPU computes it
differs, chosen per input shape:

    dense      the map has at most as many positions as the kernel has taps (res4's 2x2 and res5's 1x1 maps
               under a 3x3 kernel, the demo's C2D ResNet-18): the convolution is a linear map from the
               P_in * C_in input values of a clip (of a frame, for a kernel of 1 in time) to its P_out * C_out
               outputs, one matrix product with a (P_in C_in, P_out C_out) matrix gathered from the kernel's
               taps (zero where no tap joins an input to an output position). It does P_in * P_out tap
               products per (C_in, C_out) pair instead of the kernel's K * P_out, most of which the direct
               convolution spends on the zero padding (a 1x1 map under a 3x3 kernel: 8 of 9 taps).
    pointwise  a 1x1x1 kernel without padding: a matrix product over the channels of every (strided) position.
    direct     anything else, and every device but the CPU: nn.Conv3d's own forward (oneDNN on the CPU).

On the GPU and on the meta device (where `nlstudy.models.profile` counts FLOPs) every layer takes the direct
path, so the FLOPs a run records are the convolution's, whatever computes it on the CPU. The fast paths add in
another order than oneDNN: a CPU run's numbers are not bit for bit those of the direct path, but they are
deterministic (the same in any process, at the same thread count). `benchmarks/training.py` measures them.
"""

from __future__ import annotations

import math

import torch
from torch import nn

DIRECT, DENSE, POINTWISE = "direct", "dense", "pointwise"


def out_size(size: int, kernel: int, stride: int, padding: int) -> int:
    return (size + 2 * padding - kernel) // stride + 1


def tap_index(sizes: tuple[int, ...], kernel: tuple[int, ...], stride: tuple[int, ...],
              padding: tuple[int, ...]) -> torch.Tensor:
    """(P_in, P_out) index of the kernel tap (C order over the kernel's axes) that joins each input position to
    each output position of a zero-padded convolution over a grid of `sizes` (positions flattened in C order);
    K, the number of taps, where none does."""
    outs = [out_size(n, k, s, p) for n, k, s, p in zip(sizes, kernel, stride, padding)]
    dims = len(sizes)
    index = torch.zeros([*sizes, *outs], dtype=torch.long)
    valid = torch.ones([*sizes, *outs], dtype=torch.bool)
    for axis, (n, k, s, p, o) in enumerate(zip(sizes, kernel, stride, padding, outs)):
        offset = torch.arange(n)[:, None] - torch.arange(o)[None, :] * s + p  # (n_in, n_out): the tap on this axis
        shape = [1] * (2 * dims)
        shape[axis], shape[dims + axis] = n, o
        offset = offset.view(shape)
        valid &= (offset >= 0) & (offset < k)
        index = index * k + offset.clamp(0, k - 1)
    index[~valid] = math.prod(kernel)
    return index.view(math.prod(sizes), math.prod(outs))


class VideoConv3d(nn.Conv3d):
    """nn.Conv3d (the same arguments, parameters and state dict) whose CPU forward takes the dense or pointwise
    path where the input's shape makes it cheaper (see the module docstring). `fast_paths = False` on an
    instance keeps it on the direct path: nn.Conv3d's computation, bit for bit."""

    fast_paths = True

    def _plan(self, spatial: tuple[int, int, int]) -> tuple:
        """(path, its arguments...) for an input of (T, H, W) = `spatial`, made once per shape."""
        plans = self.__dict__.setdefault("_plans", {})
        if spatial not in plans:
            plans[spatial] = self._make_plan(spatial)
        return plans[spatial]

    def _make_plan(self, spatial: tuple[int, int, int]) -> tuple:
        if self.groups != 1 or self.dilation != (1, 1, 1) or self.padding_mode != "zeros" or isinstance(self.padding, str):
            return (DIRECT,)
        kernel, stride, padding = self.kernel_size, self.stride, self.padding
        if kernel == (1, 1, 1) and padding == (0, 0, 0):
            return (POINTWISE,)
        # a kernel of 1 in time (C2D, I3D's uninflated layers) sees each frame on its own: the frames are rows
        per_frame = kernel[0] == 1 and stride[0] == 1 and padding[0] == 0
        axes = slice(1, 3) if per_frame else slice(0, 3)
        sizes, k, s, p = spatial[axes], kernel[axes], stride[axes], padding[axes]
        if math.prod(sizes) > math.prod(k):  # the matrix would take more tap products than the kernel
            return (DIRECT,)
        index = tap_index(sizes, k, s, p)
        outs = tuple(out_size(n, kk, ss, pp) for n, kk, ss, pp in zip(spatial, kernel, stride, padding))
        padded = bool((index == math.prod(k)).any())  # some (input, output) pair is joined by no tap
        return (DENSE, per_frame, index.flatten(), padded, outs)

    def _conv_forward(self, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
        if not self.fast_paths or x.device.type != "cpu" or x.dim() != 5:
            return super()._conv_forward(x, weight, bias)
        plan = self._plan(tuple(x.shape[2:]))
        if plan[0] == POINTWISE:
            return self._pointwise(x, weight, bias)
        if plan[0] == DENSE:
            return self._dense(x, weight, bias, *plan[1:])
        return super()._conv_forward(x, weight, bias)

    def _pointwise(self, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
        st, sh, sw = self.stride
        x = x[:, :, ::st, ::sh, ::sw]  # (B, C_in, T', H', W')
        b, c, t, h, w = x.shape
        rows = x.permute(0, 2, 3, 4, 1).reshape(-1, c)  # (B T' H' W', C_in): a view for channels_last_3d
        w2 = weight.view(weight.shape[0], c).t()  # (C_in, C_out)
        y = torch.addmm(bias, rows, w2) if bias is not None else rows @ w2  # (B T' H' W', C_out)
        return y.view(b, t, h, w, -1).permute(0, 4, 1, 2, 3)  # (B, C_out, T', H', W'), channels_last_3d

    def _dense(self, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, per_frame: bool,
               index: torch.Tensor, padded: bool, outs: tuple[int, int, int]) -> torch.Tensor:
        b, c, t, h, w = x.shape
        c_out, taps = weight.shape[0], math.prod(weight.shape[2:])
        p_in, p_out = (h * w, outs[1] * outs[2]) if per_frame else (t * h * w, math.prod(outs))
        # the taps as (C_out, K, C_in), a view of a channels_last_3d weight (its gradient then arrives in the
        # weight's own layout, with no copy), else as (C_out, C_in, K), a view of a contiguous one
        last = not weight.is_contiguous() and weight.is_contiguous(memory_format=torch.channels_last_3d)
        tap_dim = 1 if last else 2
        kernel = weight.permute(0, 2, 3, 4, 1).reshape(c_out, taps, c) if last else weight.reshape(c_out, c, taps)
        if padded:  # tap K: zeros, for the pairs that no tap joins
            zeros = kernel.new_zeros(c_out, 1, c) if last else kernel.new_zeros(c_out, c, 1)
            kernel = torch.cat([kernel, zeros], tap_dim)
        matrix = kernel.index_select(tap_dim, index)  # (C_out, P_in P_out, C_in) or (C_out, C_in, P_in P_out)
        if last:
            matrix = matrix.view(c_out, p_in, p_out, c).permute(1, 3, 2, 0)  # (P_in, C_in, P_out, C_out)
        else:
            matrix = matrix.view(c_out, c, p_in, p_out).permute(2, 1, 3, 0)  # (P_in, C_in, P_out, C_out)
        matrix = matrix.reshape(p_in * c, p_out * c_out)
        rows = x.permute(0, 2, 3, 4, 1).reshape(-1, p_in * c)  # (B T, H W C_in) per frame, else (B, T H W C_in)
        y = rows @ matrix  # (rows, P_out C_out)
        if bias is not None:
            y = (y.view(-1, p_out, c_out) + bias).view(y.shape)
        return y.view(b, *outs, c_out).permute(0, 4, 1, 2, 3)  # (B, C_out, T', H', W'), channels_last_3d


__all__ = ["VideoConv3d", "tap_index"]
