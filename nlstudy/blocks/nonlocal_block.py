"""The non-local block of Wang, Girshick, Gupta and He, "Non-local Neural Networks" (CVPR 2018).

    z_i = x_i + BN(W_z y_i),     y_i = 1/C(x) * sum_j f(x_i, x_j) g(x_j)          (paper, eqs. 1 and 6)

with one of four pairwise functions f (the paper's Table 2a), each a record in `nlstudy.blocks.pairwise.FORMS`
with its equation, its computation without the N x N matrix and its cost model.

N is the number of positions attended to (after subsampling; per frame in space mode, per pixel in
time mode). theta, phi and g are 1x1(x1) convolutions to `inter_channels` (C/2 by default).
`attention(x)` builds the explicit normalised matrix f(x_i, x_j) / C(x), for analysis only.
`nlstudy.blocks.reference` holds the explicit formulations the tests and the benchmark compare against.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from nlstudy.adapters.torch import conv_forward
from nlstudy.blocks.pairwise import FORMS, SOFTMAX_FORMS, Pairwise
from nlstudy.choices import DEFAULT_MODE, MODES, SUBSAMPLE_ORDERS, ZERO_INITS
from nlstudy.registry import lookup

CONV = {1: nn.Conv1d, 2: nn.Conv2d, 3: nn.Conv3d}
BATCH_NORM = {1: nn.BatchNorm1d, 2: nn.BatchNorm2d, 3: nn.BatchNorm3d}
MAX_POOL = {1: nn.MaxPool1d, 2: nn.MaxPool2d, 3: nn.MaxPool3d}
# the paper's subsampling: max-pool after phi and g, 2x2 in space and never in time
DEFAULT_KERNEL = {1: (2,), 2: (2, 2), 3: (1, 2, 2)}


def parse_subsample(subsample: bool | str | Sequence[int] | None, dim: int, mode: str) -> tuple[int, ...] | None:
    """The pooling kernel of the phi/g path, or None for no subsampling.

    True gives the paper's kernel (2 / 2x2 / 1x2x2), restricted to the axes the block attends over:
    in time mode (same pixel across frames) there is no spatial pooling, so True means none.
    A kernel can be given as "2x2x2" or (2, 2, 2); it must not pool across the frames of a space-mode
    block nor across the pixels of a time-mode block.
    """
    if subsample is None or subsample is False:
        return None
    if subsample is True:
        kernel = DEFAULT_KERNEL[dim]
        if mode == "time":
            kernel = (kernel[0], 1, 1)
    else:
        try:
            parts = subsample.lower().split("x") if isinstance(subsample, str) else list(subsample)
            kernel = tuple(int(p) for p in parts)
        except (TypeError, ValueError):
            kernel = ()
        if len(kernel) != dim or min(kernel) < 1:
            example = "x".join(str(k) for k in DEFAULT_KERNEL[dim])
            raise ValueError(
                f"subsample={subsample!r}: expected true, false or a {dim}-d pooling kernel such as "
                f"'{example}' (positive integers)"
            )
    if mode == "space" and kernel[0] != 1:
        raise ValueError(f"subsample={subsample!r} pools across frames, but mode='space' attends within one frame")
    if mode == "time" and any(k != 1 for k in kernel[1:]):
        raise ValueError(f"subsample={subsample!r} pools across pixels, but mode='time' attends to the same pixel")
    return None if all(k == 1 for k in kernel) else kernel


def check_options(dim: int, pairwise: str, mode: str, subsample: bool | str | Sequence[int] | None,
                  scale: bool) -> tuple[Pairwise, tuple[int, ...] | None]:
    """The pairwise function's record and the subsampling kernel, or a ValueError naming the option: the checks of
    the block's options that the model builders also make where no block uses them (nlstudy.models.plugin)."""
    form = lookup(FORMS, pairwise, "pairwise")
    lookup(dict.fromkeys(MODES), mode, "mode")
    if mode != DEFAULT_MODE and dim != 3:
        raise ValueError(f"mode={mode!r} needs dim=3, a video network's (T, H, W) features; got dim={dim}: "
                         f"a 2-d block attends over the whole image (mode={DEFAULT_MODE!r})")
    kernel = parse_subsample(subsample, dim, mode)
    if scale and not form.softmax:
        raise ValueError(f"scale=True applies to the softmax forms {', '.join(SOFTMAX_FORMS)}, not pairwise={pairwise!r}")
    return form, kernel


class NonLocalBlock(nn.Module):
    """Residual non-local block; a freshly built block is exactly the identity.

    Args:
        in_channels: channels C of the input.
        dim: 1, 2 or 3 for (B, C, L), (B, C, H, W) or (B, C, T, H, W) inputs.
        pairwise: a name in nlstudy.blocks.pairwise.FORMS (nlstudy.choices.PAIRWISE).
        inter_channels: width C' of theta/phi/g; default C // 2 (the paper).
        subsample: see `parse_subsample`; the paper's max-pool by default.
        mode: "spacetime" (all positions), "space" (the same frame), "time" (the same pixel); 3-d only.
        subsample_order: "after" pools the phi and g outputs (the paper), "before" pools x first and
            shares it between phi and g (the released Caffe2 code). The gaussian form has no phi/g
            projection of the keys, so both orders pool x.
        scale: divide theta.phi by sqrt(d) before the softmax (released code; not in the paper).
        zero_init: "norm" zeroes the output BN's weight and bias; "conv" zeroes the output conv and
            uses no norm (the paper's frozen-BN 128-frame runs).
        init_std: std of the Gaussian init of every 1x1 conv (the released code: 0.01).
    """

    # When the explicit (G, N, N') weights replace the default path (explicit_pays): where they cost fewer
    # multiply-adds per forward+backward by at least this many (every size: below the fused kernels' and the
    # associative product's overheads, the explicit products win too) ...
    explicit_min_saving = 0
    # ... and take at most this many bytes (res3 of a ResNet-50 on 8-frame clips in float32, 2 x 512 x 8 x 28 x 28
    # without subsampling: 315 MB; the softmax forms hold one such tensor, and chunks; beyond, memory linear in N
    # is worth the fused kernel's recomputation)
    explicit_max_bytes = 2**29
    # the softmax forms' explicit weights above this many bytes are computed query rows this many bytes at a time
    # (ExplicitSoftmaxAttention), below it by autograd's own nodes
    explicit_chunk_bytes = 2**24
    # the gaussian form's backward as one product x (dS + dS^T) for x of at least this many channels (for narrower
    # x a second product costs less than adding dS^T)
    symmetric_min_width = 64

    def __init__(
        self,
        in_channels: int,
        dim: int = 3,
        pairwise: str = "embedded_gaussian",
        inter_channels: int | None = None,
        subsample: bool | str | Sequence[int] = True,
        mode: str = "spacetime",
        *,
        subsample_order: str = "after",
        scale: bool = False,
        zero_init: str = "norm",
        init_std: float = 0.01,
    ):
        super().__init__()
        conv = lookup(CONV, dim, "dim")
        form, kernel = check_options(dim, pairwise, mode, subsample, scale)
        lookup(dict.fromkeys(SUBSAMPLE_ORDERS), subsample_order, "subsample_order")
        lookup(dict.fromkeys(ZERO_INITS), zero_init, "zero_init")
        if not isinstance(in_channels, int) or in_channels < 1:
            raise ValueError(f"in_channels must be a positive integer, got {in_channels!r}")
        inter = in_channels // 2 if inter_channels is None else inter_channels
        if not isinstance(inter, int) or inter < 1:
            raise ValueError(f"inter_channels must be a positive integer, got {inter_channels!r} for C={in_channels}")

        self.in_channels, self.inter_channels, self.dim = in_channels, inter, dim
        self.pairwise, self.mode, self.subsample_order = pairwise, mode, subsample_order
        self.scale, self.zero_init, self.init_std = scale, zero_init, init_std
        self.subsample_kernel = kernel

        # theta and phi, but for a form comparing the raw x_i . x_j (the gaussian)
        self.theta = conv(in_channels, inter, 1) if form.embedded else None
        self.phi = conv(in_channels, inter, 1) if form.embedded else None
        self.g = conv(in_channels, inter, 1)
        # w_f of the concatenation form: [theta_i, phi_j] (2C') -> one channel; no bias, as the ports
        self.concat_proj = nn.Linear(2 * inter, 1, bias=False) if form.projects_pairs else None
        self.pool = (
            lookup(MAX_POOL, dim, "dim")(self.subsample_kernel, self.subsample_kernel, ceil_mode=True)
            if self.subsample_kernel
            else nn.Identity()
        )
        self.out_proj = conv(inter, in_channels, 1)  # W_z
        self.out_norm = lookup(BATCH_NORM, dim, "dim")(in_channels) if zero_init == "norm" else nn.Identity()
        self.reset_parameters()

    def reset_parameters(self) -> None:
        for m in (self.theta, self.phi, self.g, self.out_proj):
            if m is not None:
                nn.init.normal_(m.weight, std=self.init_std)
                nn.init.zeros_(m.bias)
        if self.concat_proj is not None:
            nn.init.normal_(self.concat_proj.weight, std=self.init_std)
        # the block starts as the identity: z = x + 0 (the paper's "BN scale starts at zero")
        if self.zero_init == "norm":  # out_norm is a BatchNorm
            self.out_norm.reset_parameters()
            nn.init.zeros_(self.out_norm.weight)
            nn.init.zeros_(self.out_norm.bias)
        else:
            nn.init.zeros_(self.out_proj.weight)
            nn.init.zeros_(self.out_proj.bias)

    def extra_repr(self) -> str:
        kernel = "x".join(map(str, self.subsample_kernel)) if self.subsample_kernel else "none"
        return (
            f"pairwise={self.pairwise}, mode={self.mode}, C={self.in_channels}, C'={self.inter_channels}, "
            f"subsample={kernel} ({self.subsample_order}), scale={self.scale}, zero_init={self.zero_init}"
        )

    # --- shared by forward and attention ---

    def _check_input(self, x: torch.Tensor) -> None:
        if x.dim() != self.dim + 2 or x.shape[1] != self.in_channels:
            raise ValueError(
                f"NonLocalBlock(dim={self.dim}, in_channels={self.in_channels}) expects a "
                f"(B, {self.in_channels}, {', '.join('THW'[3 - self.dim:])}) input, got shape {tuple(x.shape)}"
            )

    def project(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Queries theta(x) (B, d, *S), keys phi(x) (B, d, *S') and values g(x) (B, C', *S'), S' subsampled.
        Projections of the same input run as one convolution over their stacked weights (one product instead of
        two or three), and phi's and g's outputs are pooled together."""
        if self.theta is None:  # gaussian: raw x on both sides, d = C
            keys_in = self.pool(x)
            values = self.pool(self.g(x)) if self.subsample_order == "after" else self.g(keys_in)
            return x, keys_in, values
        if self.subsample_order == "before":
            pooled = self.pool(x)
            keys, values = self._stacked((self.phi, self.g), pooled)
            return self.theta(x), keys, values
        queries, keys_values = self._stacked((self.theta, self.phi, self.g), x, split=(1, 2))
        return (queries, *self.pool(keys_values).split(self.inter_channels, dim=1))

    def _stacked(self, convs: tuple[nn.Module, ...], x: torch.Tensor, split: tuple[int, ...] | None = None):
        """The 1x1 convs `convs` (same input and widths) as one: their outputs, or (with `split`, counts of convs)
        the stacked output cut into those groups."""
        weight = torch.cat([conv.weight for conv in convs])
        bias = torch.cat([conv.bias for conv in convs])
        out = conv_forward(convs[0], x, weight, bias)  # (B, n C', *S)
        return out.split([n * self.inter_channels for n in (split or (1,) * len(convs))], dim=1)

    def to_groups(self, t: torch.Tensor) -> torch.Tensor:
        """(B, C, *S) -> (G, C, n): one group per set of positions a query may attend to, channels first."""
        if self.mode == "spacetime":
            return t.flatten(2)  # (B, C, T*H*W): a view, no copy
        b, c, tt, h, w = t.shape
        if self.mode == "space":
            return t.transpose(1, 2).reshape(b * tt, c, h * w)  # (B*T, C, H*W)
        return t.permute(0, 3, 4, 1, 2).reshape(b * h * w, c, tt)  # time: (B*H*W, C, T)

    def from_groups(self, y: torch.Tensor, shape: torch.Size) -> torch.Tensor:
        """Inverse of `to_groups` on the query grid: (G, C', n) -> (B, C', *S)."""
        b, c, spatial = shape[0], y.shape[1], shape[2:]
        if self.mode == "spacetime":
            return y.reshape(b, c, *spatial)
        tt, h, w = spatial
        if self.mode == "space":
            return y.reshape(b, tt, c, h, w).transpose(1, 2)  # (B, C', T, H, W)
        return y.reshape(b, h, w, c, tt).permute(0, 3, 4, 1, 2)  # time

    # --- forward ---

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self._check_input(x)
        q, k, v = (self.to_groups(t) for t in self.project(x))  # (G, d, N), (G, d, N'), (G, C', N')
        y = self.from_groups(FORMS[self.pairwise].attend(self, q, k, v), x.shape)  # (G, C', N) -> (B, C', *S)
        return x + self.out_norm(self.out_proj(y))

    def explicit_pays(self, q: torch.Tensor, k: torch.Tensor, default_macs: int, explicit_macs: int) -> bool:
        """Whether the explicit (G, N, N') weights save `explicit_min_saving` multiply-adds over the default
        path and take at most `explicit_max_bytes`; the costs are per forward+backward."""
        weights = q.shape[0] * q.shape[2] * k.shape[2] * q.element_size()
        return default_macs - explicit_macs >= self.explicit_min_saving and weights <= self.explicit_max_bytes

    def logit_scale(self, d: int) -> float:
        """The factor of the softmax forms' logits theta.phi: 1/sqrt(d) with `scale`, else 1."""
        return 1.0 / math.sqrt(d) if self.scale else 1.0

    # --- analysis ---

    @torch.no_grad()
    def attention(self, x: torch.Tensor) -> torch.Tensor:
        """The normalised pairwise weights f(x_i, x_j) / C(x) as a (B, N_query, N_key) tensor.

        Queries index the input grid flattened (t, h, w); keys index the subsampled grid flattened.
        In space and time modes the pairs a query may not attend to hold zeros.
        Builds the N x N matrix: meant for analysis at the sizes you inspect, not for training.
        """
        self._check_input(x)
        q_grid, k_grid, _ = self.project(x)
        q, k = self.to_groups(q_grid), self.to_groups(k_grid)  # (G, d, N), (G, d, N')
        weights = FORMS[self.pairwise].weights(self, q, k)  # (G, N, N')
        return self._scatter_groups(weights, q_grid.shape, k_grid.shape)  # (G, N, N') -> (B, N, N')

    def _scatter_groups(self, att: torch.Tensor, q_shape: torch.Size, k_shape: torch.Size) -> torch.Tensor:
        """(G, n, n') per-group weights -> (B, N, N') over all positions, zero across groups."""
        if self.mode == "spacetime":
            return att
        b, _, tt, h, w = q_shape
        tk, hk, wk = k_shape[2:]
        full = att.new_zeros(b, tt, h * w, tk, hk * wk)  # (B, T, HW, T', H'W')
        if self.mode == "space":  # group (b, t): same frame, t' = t
            idx = torch.arange(tt, device=att.device)
            full[:, idx, :, idx, :] = att.reshape(b, tt, h * w, hk * wk).transpose(0, 1)  # (T, B, HW, H'W')
        else:  # time, group (b, pixel): same pixel, H'W' = HW
            idx = torch.arange(h * w, device=att.device)
            full[:, :, idx, :, idx] = att.reshape(b, h * w, tt, tk).transpose(0, 1)  # (HW, B, T, T')
        return full.reshape(b, tt * h * w, tk * hk * wk)

