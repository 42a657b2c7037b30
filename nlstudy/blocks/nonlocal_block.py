"""The non-local block of Wang, Girshick, Gupta and He, "Non-local Neural Networks" (CVPR 2018).

    z_i = x_i + BN(W_z y_i),     y_i = 1/C(x) * sum_j f(x_i, x_j) g(x_j)          (paper, eqs. 1 and 6)

with four pairwise functions f (the paper's Table 2a):

    gaussian            exp(x_i . x_j)                    C(x) = sum_j f     (softmax over j, raw x)
    embedded_gaussian   exp(theta_i . phi_j)              C(x) = sum_j f     (softmax; 1/sqrt(d) only if scale=True)
    dot_product         theta_i . phi_j                   C(x) = N
    concatenation       ReLU(w_f . [theta_i, phi_j])      C(x) = N

N is the number of positions attended to (after subsampling; per frame in space mode, per pixel in
time mode). theta, phi and g are 1x1(x1) convolutions to `inter_channels` (C/2 by default).

Without the N x N matrix:
    softmax forms   fused scaled-dot-product attention (memory linear in N on the CPU and GPU kernels);
    dot product     associativity, y = theta (phi^T g) / N, linear in N;
    concatenation   ReLU(a_i + b_j) with a = w_theta . theta, b = w_phi . phi splits into the keys with
                    b_j > -a_i; sorting b once turns sum_j ReLU(a_i + b_j) g_j into two gathered prefix
                    sums, a_i * sum g_j + sum b_j g_j, so neither the (B, 2C', N, N') tensor of the common
                    ports nor the N x N matrix is built.
The softmax forms (on the CPU) and the dot product take the explicit (G, N, N') weights instead where that
costs fewer multiply-adds and the weights fit in `explicit_max_bytes` (`_explicit_pays`): on the CPU the
softmax forms always do (up to 512 MB of weights), since the fused kernel recomputes q.k in the backward and
pads the gaussian's values to the width of x, which the explicit products on BLAS do not; the dot product's
d x C' summary per group costs more than the weights when a group holds few positions (time mode: the T frames
of a pixel). The softmax forms' explicit path computes query rows a chunk at a time and turns the weights into
their gradient in place, so it holds one (G, N, N') tensor, not the three of the common ports.
`attention(x)` builds the explicit normalised matrix f(x_i, x_j) / C(x), for analysis only.
`nlstudy.blocks.reference` holds the explicit formulations the tests and the benchmark compare against.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from nlstudy.adapters.torch import conv_forward
from nlstudy.choices import MODES, PAIRWISE, SOFTMAX_PAIRWISE, SUBSAMPLE_ORDERS, ZERO_INITS
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


def symmetrise_(a: torch.Tensor, block: int = 256) -> torch.Tensor:
    """a <- a + a^T for each (N, N) matrix of a (G, N, N) tensor, in place, one (block x block) tile pair at a
    time (a tile and its mirror, then the next pair): no second N x N matrix is made."""
    n = a.shape[1]
    for i in range(0, n, block):
        for j in range(i, n, block):
            tile = a[:, i : i + block, j : j + block]
            if i == j:
                tile.add_(tile.transpose(1, 2).clone())
                continue
            mirror = a[:, j : j + block, i : i + block]
            both = tile + mirror.transpose(1, 2)
            tile.copy_(both)
            mirror.copy_(both.transpose(1, 2))
    return a


class ExplicitSoftmaxAttention(torch.autograd.Function):
    """softmax(s q^T k) per group applied to v, through explicit (G, N, N') weights larger than a chunk: query rows
    `chunk_bytes` at a time, so one N x N' tensor at most (the weights, kept for the backward, which turns them
    into their gradient in place) beside the chunks. (Weights that fit in one chunk take autograd's own softmax and
    products: `NonLocalBlock._softmax_attend`.)

    Forward q.k and p.v, backward four products and no recomputation (the fused kernel recomputes q.k). With
    `one_product` (k is q: the gaussian form without subsampling, q.k = x^T x symmetric, and x wide enough) the two
    products of the backward that give q's and k's gradients are one: x (dS + dS^T). Since the backward overwrites
    the weights, a second backward through the same graph (retain_graph) fails ("modified by an inplace
    operation") rather than give wrong gradients.
    """

    @staticmethod
    def chunks(g: int, n: int, n_keys: int, itemsize: int, chunk_bytes: int) -> list[slice]:
        """Slices of the N query rows, each (G, rows, N') chunk at most `chunk_bytes`."""
        rows = max(1, min(n, chunk_bytes // (g * n_keys * itemsize)))
        return [slice(i, min(i + rows, n)) for i in range(0, n, rows)]

    @staticmethod
    @torch.amp.custom_fwd(device_type="cpu")  # the backward runs under the forward's autocast state
    def forward(ctx, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, scale: float, chunk_bytes: int,
                one_product: bool) -> torch.Tensor:
        # (G, d, N), (G, d, N'), (G, C', N') -> (G, C', N)
        chunks = ExplicitSoftmaxAttention.chunks(q.shape[0], q.shape[2], k.shape[2], q.element_size(), chunk_bytes)
        p = q.new_empty(q.shape[0], q.shape[2], k.shape[2])  # (G, N, N'): the weights, filled chunk by chunk
        for rows in chunks:
            logits = torch.bmm(q[:, :, rows].transpose(1, 2), k)  # (G, c, N')
            p[:, rows] = torch.softmax(logits.mul_(scale) if scale != 1.0 else logits, dim=-1)
        y = torch.bmm(v, p.transpose(1, 2))  # (G, C', N') @ (G, N', N) -> (G, C', N)
        ctx.scale, ctx.chunks, ctx.symmetric = scale, chunks, one_product and k is q
        ctx.save_for_backward(q, k, v, p, y)
        return y

    @staticmethod
    @torch.amp.custom_bwd(device_type="cpu")
    def backward(ctx, dy: torch.Tensor):  # (G, C', N)
        q, k, v, p, y = ctx.saved_tensors
        dv = torch.bmm(dy, p)  # v's: (G, C', N) @ (G, N, N') -> (G, C', N'), before p is overwritten
        # softmax backward: ds_ij = p_ij (dp_ij - sum_j' p_ij' dp_ij'), with sum_j' p_ij' dp_ij' = dy_i . y_i
        dot = (dy * y).sum(1).unsqueeze(2)  # (G, N, 1)
        for rows in ctx.chunks:
            dp = torch.bmm(dy[:, :, rows].transpose(1, 2), v)  # (G, c, C') @ (G, C', N') -> (G, c, N')
            p[:, rows].mul_(dp.sub_(dot[:, rows]))  # p's memory now holds dS for these rows
        ds = p
        if ctx.symmetric:  # k is q, one tensor: its gradient is q (dS + dS^T), (G, d, N) @ (G, N, N)
            dq, dk = torch.bmm(q, symmetrise_(ds)), None
        else:
            dq, dk = torch.bmm(k, ds.transpose(1, 2)), torch.bmm(q, ds)  # (G, d, N), (G, d, N')
        if ctx.scale != 1.0:
            dq = dq.mul_(ctx.scale)
            dk = dk.mul_(ctx.scale) if dk is not None else None
        return dq, dk, dv, None, None, None  # with k given as q and dk None, dq is the whole gradient


class NonLocalBlock(nn.Module):
    """Residual non-local block; a freshly built block is exactly the identity.

    Args:
        in_channels: channels C of the input.
        dim: 1, 2 or 3 for (B, C, L), (B, C, H, W) or (B, C, T, H, W) inputs.
        pairwise: one of PAIRWISE.
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

    # When the explicit (G, N, N') weights replace the default path (_explicit_pays): where they cost fewer
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
        lookup(dict.fromkeys(PAIRWISE), pairwise, "pairwise")  # FORMS (below) holds each one's code
        lookup(dict.fromkeys(MODES), mode, "mode")
        lookup(dict.fromkeys(SUBSAMPLE_ORDERS), subsample_order, "subsample_order")
        lookup(dict.fromkeys(ZERO_INITS), zero_init, "zero_init")
        if mode != "spacetime" and dim != 3:
            raise ValueError(f"mode={mode!r} needs dim=3 (T, H, W input); got dim={dim}")
        if not isinstance(in_channels, int) or in_channels < 1:
            raise ValueError(f"in_channels must be a positive integer, got {in_channels!r}")
        inter = in_channels // 2 if inter_channels is None else inter_channels
        if not isinstance(inter, int) or inter < 1:
            raise ValueError(f"inter_channels must be a positive integer, got {inter_channels!r} for C={in_channels}")
        if scale and pairwise not in SOFTMAX_PAIRWISE:
            raise ValueError(f"scale=True applies to the softmax forms {SOFTMAX_PAIRWISE}, not pairwise={pairwise!r}")

        self.in_channels, self.inter_channels, self.dim = in_channels, inter, dim
        self.pairwise, self.mode, self.subsample_order = pairwise, mode, subsample_order
        self.scale, self.zero_init, self.init_std = scale, zero_init, init_std
        self.subsample_kernel = parse_subsample(subsample, dim, mode)

        embed = pairwise != "gaussian"  # the gaussian form compares raw x_i . x_j
        self.theta = conv(in_channels, inter, 1) if embed else None
        self.phi = conv(in_channels, inter, 1) if embed else None
        self.g = conv(in_channels, inter, 1)
        # w_f of the concatenation form: [theta_i, phi_j] (2C') -> one channel; no bias, as the ports
        self.concat_proj = nn.Linear(2 * inter, 1, bias=False) if pairwise == "concatenation" else None
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
        attend, _ = FORMS[self.pairwise]
        y = self.from_groups(attend(self, q, k, v), x.shape)  # (G, C', N) -> (B, C', *S)
        return x + self.out_norm(self.out_proj(y))

    def _explicit_pays(self, q: torch.Tensor, k: torch.Tensor, default_macs: int, explicit_macs: int) -> bool:
        """Whether the explicit (G, N, N') weights save `explicit_min_saving` multiply-adds over the default
        path and take at most `explicit_max_bytes`; the costs are per forward+backward."""
        weights = q.shape[0] * q.shape[2] * k.shape[2] * q.element_size()
        return default_macs - explicit_macs >= self.explicit_min_saving and weights <= self.explicit_max_bytes

    def _softmax_attend(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        d, cv = q.shape[1], v.shape[1]
        scale = self._logit_scale(d)
        pairs = q.shape[0] * q.shape[2] * k.shape[2]  # G N N'
        symmetric = self.theta is None and self.subsample_kernel is None  # gaussian, unpooled: keys = queries
        # the fused kernel: seven products at width max(d, C') (q.k twice); explicit: q.k and q's and k's
        # gradients at d (one product for both when symmetric), p.v, dp and v's gradient at C'
        one_product = symmetric and d >= self.symmetric_min_width
        explicit_macs = ((2 if one_product else 3) * d + 3 * cv) * pairs
        if q.is_cpu and self._explicit_pays(q, k, 7 * max(d, cv) * pairs, explicit_macs):
            if pairs * q.element_size() > self.explicit_chunk_bytes:
                return ExplicitSoftmaxAttention.apply(q, q if symmetric else k, v, scale, self.explicit_chunk_bytes,
                                                      one_product)
            # weights that fit in one chunk: autograd's own nodes, no Python backward (which costs more than the
            # products at the demo's sizes)
            logits = torch.bmm(q.transpose(1, 2), k)  # (G, N, N')
            p = torch.softmax(logits * scale if scale != 1.0 else logits, dim=-1)
            # p @ v^T, not v @ p^T: p's gradient then comes in p's own layout (no N x N' copy for the softmax's)
            return torch.bmm(p, v.transpose(1, 2)).transpose(1, 2)  # (G, N, N') @ (G, N', C') -> (G, C', N)
        # the fused CPU kernel wants (N, width) rows with stride 1 and one width for q, k and v:
        # zero-pad the narrower side (zeros change neither q.k nor the kept output channels)
        width = max(d, cv)
        q, k, v = (F.pad(t.transpose(1, 2), (0, width - t.shape[1])).contiguous().unsqueeze(1) for t in (q, k, v))
        y = F.scaled_dot_product_attention(q, k, v, scale=scale)  # (G, 1, N, width)
        return y.squeeze(1)[..., :cv].transpose(1, 2)  # (G, C', N)

    def _dot_attend(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        (g, d, n), n_keys, cv = q.shape, k.shape[2], v.shape[1]
        # three products each way (forward, and two gradients per product): at d x C' per position
        # associatively, at N' (d + C') per query explicitly
        if self._explicit_pays(q, k, 3 * g * d * cv * (n + n_keys), 3 * g * n * n_keys * (d + cv)):
            return v @ (k.transpose(1, 2) @ q) / n_keys  # (G, C', N') @ ((G, N', d) @ (G, d, N)) -> (G, C', N)
        # associativity: y = g (phi^T theta) / N', never the N x N' matrix
        return (v @ k.transpose(1, 2)) @ q / n_keys  # ((G, C', N') @ (G, N', d)) @ (G, d, N) -> (G, C', N)

    def _logit_scale(self, d: int) -> float:
        return 1.0 / math.sqrt(d) if self.scale else 1.0

    def _concat_weights(self, q: torch.Tensor, k: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """a_i = w_theta . theta_i (G, N) and b_j = w_phi . phi_j (G, N'): w_f split over [theta, phi]."""
        w_theta, w_phi = self.concat_proj.weight[0].split(self.inter_channels)
        return w_theta @ q, w_phi @ k  # (d,) @ (G, d, N) -> (G, N)

    def _concat_attend(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        a, b = self._concat_weights(q, k)  # (G, N), (G, N')
        n_keys, cv = k.shape[2], v.shape[1]
        b_desc, order = b.sort(dim=1, descending=True)  # (G, N')
        v_desc = v.gather(2, order.unsqueeze(1).expand(-1, cv, -1))  # (G, C', N')
        # keys with ReLU(a_i + b_j) > 0 are the first c_i of the descending order: c_i = #{-b_j < a_i}
        count = torch.searchsorted(-b_desc, a.contiguous())  # (G, N), left side: strict inequality
        zero = v.new_zeros(v.shape[0], cv, 1)
        sum_v = torch.cat([zero, v_desc.cumsum(2)], 2)  # (G, C', N'+1): sums over the first c keys
        sum_bv = torch.cat([zero, (b_desc.unsqueeze(1) * v_desc).cumsum(2)], 2)
        idx = count.unsqueeze(1).expand(-1, cv, -1)  # (G, C', N)
        return (a.unsqueeze(1) * sum_v.gather(2, idx) + sum_bv.gather(2, idx)) / n_keys  # (G, C', N)

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
        _, weights = FORMS[self.pairwise]
        return self._scatter_groups(weights(self, q, k), q_grid.shape, k_grid.shape)  # (G, N, N') -> (B, N, N')

    # the explicit weights f(x_i, x_j) / C(x) of each form, (G, d, N), (G, d, N') -> (G, N, N')

    def _softmax_weights(self, q: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
        return torch.softmax(q.transpose(1, 2) @ k * self._logit_scale(q.shape[1]), dim=-1)

    def _dot_weights(self, q: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
        return q.transpose(1, 2) @ k / k.shape[2]

    def _concat_pair_weights(self, q: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
        a, b = self._concat_weights(q, k)  # (G, N), (G, N')
        return torch.relu(a.unsqueeze(2) + b.unsqueeze(1)) / k.shape[2]

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


# pairwise function (nlstudy.choices.PAIRWISE) -> (y computed without the N x N matrix, the explicit weights)
FORMS = {
    "gaussian": (NonLocalBlock._softmax_attend, NonLocalBlock._softmax_weights),
    "embedded_gaussian": (NonLocalBlock._softmax_attend, NonLocalBlock._softmax_weights),
    "dot_product": (NonLocalBlock._dot_attend, NonLocalBlock._dot_weights),
    "concatenation": (NonLocalBlock._concat_attend, NonLocalBlock._concat_pair_weights),
}
