"""The pairwise functions f of the non-local block (the paper's Table 2a), one record each in `FORMS`: what the
block (nlstudy.blocks.nonlocal_block), its explicit N x N reference (nlstudy.blocks.reference), the tests and
the benchmarks iterate over. A new form is one `Pairwise` record here (its name also in nlstudy.choices.PAIRWISE,
the torch-free vocabulary the CLI, sweeps and report read), plus its test.

    gaussian            exp(x_i . x_j)                    C(x) = sum_j f     (softmax over j, raw x)
    embedded_gaussian   exp(theta_i . phi_j)              C(x) = sum_j f     (softmax; 1/sqrt(d) only if scale=True)
    dot_product         theta_i . phi_j                   C(x) = N
    concatenation       ReLU(w_f . [theta_i, phi_j])      C(x) = N

Without the N x N matrix (each record's `attend`):
    softmax forms   fused scaled-dot-product attention (memory linear in N on the CPU and GPU kernels);
    dot product     associativity, y = theta (phi^T g) / N, linear in N;
    concatenation   ReLU(a_i + b_j) with a = w_theta . theta, b = w_phi . phi splits into the keys with
                    b_j > -a_i; sorting b once turns sum_j ReLU(a_i + b_j) g_j into two gathered prefix
                    sums, a_i * sum g_j + sum b_j g_j, so neither the (B, 2C', N, N') tensor of the common
                    ports nor the N x N matrix is built.
The softmax forms (on the CPU) and the dot product take the explicit (G, N, N') weights instead where that
costs fewer multiply-adds (each record's `cost`) and the weights fit in the block's `explicit_max_bytes`
(`NonLocalBlock.explicit_pays`): on the CPU the softmax forms always do (up to 512 MB of weights), since the
fused kernel recomputes q.k in the backward and pads the gaussian's values to the width of x, which the explicit
products on BLAS do not; the dot product's d x C' summary per group costs more than the weights when a group
holds few positions (time mode: the T frames of a pixel). The softmax forms' explicit path computes query rows a
chunk at a time and turns the weights into their gradient in place, so it holds one (G, N, N') tensor, not the
three of the common ports.

Shapes: q (G, d, N) queries, k (G, d, N') keys, v (G, C', N') values, one group G per set of positions a query
may attend to (NonLocalBlock.to_groups); `attend` returns y (G, C', N), `weights` f / C(x) as (G, N, N').
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

NonLocalBlock = nn.Module  # the functions below take the block (nlstudy.blocks.nonlocal_block, which imports this)


@dataclass(frozen=True)
class Pairwise:
    """One pairwise function f and everything that depends on which one it is.

    Attributes:
        name: model.backbone.nl.pairwise.
        equation: f(x_i, x_j) and C(x), as the paper's Table 2a writes them.
        embedded: theta and phi project x (False: f compares the raw x_i . x_j, and the block has no theta/phi).
        softmax: C(x) = sum_j f, a softmax over the keys (model.backbone.nl.scale applies); else C(x) = N.
        projects_pairs: a learnt w_f scores each [theta_i, phi_j] (the block's `concat_proj`).
        attend: (block, q, k, v) -> y, without building the N x N matrix where the block's sizes say so.
        weights: (block, q, k) -> the explicit f / C(x) per group (NonLocalBlock.attention, for analysis).
        pair: (theta_i, phi_j, block) -> f for one pair of positions (d,) and (d,): the paper's equation, position
            by position (the tests' transcription of eqs. 1-6).
        scores: (block, q, k) -> (B, N, N') over all pairs, from (B, N, d) and (B, N', d): the logits before
            the softmax of a softmax form, else f (nlstudy.blocks.reference's explicit N x N formulation).
        ports_scores: the same as the common PyTorch ports compute it, where that differs (the concatenation's
            (B, 2C', N, N') pairs); None: `scores`.
        cost: (G, N, N', d, C', one_product) -> (multiply-adds of one forward+backward on the default path, on the
            explicit weights path); None for a form with one path only.
    """

    name: str
    equation: str
    embedded: bool
    softmax: bool
    projects_pairs: bool
    attend: Callable[..., torch.Tensor]
    weights: Callable[..., torch.Tensor]
    pair: Callable[..., torch.Tensor]
    scores: Callable[..., torch.Tensor]
    ports_scores: Callable[..., torch.Tensor] | None = None
    cost: Callable[..., tuple[int, int]] | None = None


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
    products: `softmax_attend`.)

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
        tiny = torch.finfo(p.dtype).tiny
        for rows in chunks:
            logits = torch.bmm(q[:, :, rows].transpose(1, 2), k)  # (G, c, N')
            weights = torch.softmax(logits.mul_(scale) if scale != 1.0 else logits, dim=-1)
            # weights below the smallest normal float are denormals, which x86 multiplies tens of times slower (the
            # unnormalised gaussian form of wide x makes many: 20x the products' time at res3): they become zeros
            p[:, rows] = weights.masked_fill_(weights < tiny, 0.0)
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
        tiny = torch.finfo(p.dtype).tiny
        for rows in ctx.chunks:
            dp = torch.bmm(dy[:, :, rows].transpose(1, 2), v)  # (G, c, C') @ (G, C', N') -> (G, c, N')
            ds_rows = p[:, rows].mul_(dp.sub_(dot[:, rows]))  # p's memory now holds dS for these rows
            ds_rows.masked_fill_(ds_rows.abs() < tiny, 0.0)  # no denormals into the products below either
        ds = p
        if ctx.symmetric:  # k is q, one tensor: its gradient is q (dS + dS^T), (G, d, N) @ (G, N, N)
            dq, dk = torch.bmm(q, symmetrise_(ds)), None
        else:
            dq, dk = torch.bmm(k, ds.transpose(1, 2)), torch.bmm(q, ds)  # (G, d, N), (G, d, N')
        if ctx.scale != 1.0:
            dq = dq.mul_(ctx.scale)
            dk = dk.mul_(ctx.scale) if dk is not None else None
        return dq, dk, dv, None, None, None  # with k given as q and dk None, dq is the whole gradient


# --- the softmax forms: gaussian, embedded gaussian ---

def softmax_cost(g: int, n: int, n_keys: int, d: int, cv: int, one_product: bool = False) -> tuple[int, int]:
    # the fused kernel: seven products at width max(d, C') (q.k twice); explicit: q.k and q's and k's
    # gradients at d (one product for both when symmetric), p.v, dp and v's gradient at C'
    pairs = g * n * n_keys  # G N N'
    return 7 * max(d, cv) * pairs, ((2 if one_product else 3) * d + 3 * cv) * pairs


def softmax_attend(block: NonLocalBlock, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    d, cv = q.shape[1], v.shape[1]
    scale = block.logit_scale(d)
    pairs = q.shape[0] * q.shape[2] * k.shape[2]  # G N N'
    symmetric = block.theta is None and block.subsample_kernel is None  # gaussian, unpooled: keys = queries
    one_product = symmetric and d >= block.symmetric_min_width
    if q.is_cpu and block.explicit_pays(q, k, *softmax_cost(q.shape[0], q.shape[2], k.shape[2], d, cv, one_product)):
        if pairs * q.element_size() > block.explicit_chunk_bytes:
            return ExplicitSoftmaxAttention.apply(q, q if symmetric else k, v, scale, block.explicit_chunk_bytes,
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


def softmax_weights(block: NonLocalBlock, q: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    return torch.softmax(q.transpose(1, 2) @ k * block.logit_scale(q.shape[1]), dim=-1)


def exp_dot(theta_i: torch.Tensor, phi_j: torch.Tensor, block: NonLocalBlock) -> torch.Tensor:
    return torch.exp(theta_i @ phi_j / (math.sqrt(theta_i.numel()) if block.scale else 1.0))


def dot_logits(block: NonLocalBlock, q: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    logits = q @ k.transpose(1, 2)  # (B, N, N')
    return logits / math.sqrt(q.shape[-1]) if block.scale else logits


# --- the dot product ---

def dot_cost(g: int, n: int, n_keys: int, d: int, cv: int, one_product: bool = False) -> tuple[int, int]:
    # three products each way (forward, and two gradients per product): at d x C' per position
    # associatively, at N' (d + C') per query explicitly
    return 3 * g * d * cv * (n + n_keys), 3 * g * n * n_keys * (d + cv)


def dot_attend(block: NonLocalBlock, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    (g, d, n), n_keys, cv = q.shape, k.shape[2], v.shape[1]
    if block.explicit_pays(q, k, *dot_cost(g, n, n_keys, d, cv)):
        return v @ (k.transpose(1, 2) @ q) / n_keys  # (G, C', N') @ ((G, N', d) @ (G, d, N)) -> (G, C', N)
    # associativity: y = g (phi^T theta) / N', never the N x N' matrix
    return (v @ k.transpose(1, 2)) @ q / n_keys  # ((G, C', N') @ (G, N', d)) @ (G, d, N) -> (G, C', N)


def dot_weights(block: NonLocalBlock, q: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    return q.transpose(1, 2) @ k / k.shape[2]


def dot(theta_i: torch.Tensor, phi_j: torch.Tensor, block: NonLocalBlock) -> torch.Tensor:
    return theta_i @ phi_j


def dot_scores(block: NonLocalBlock, q: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    return q @ k.transpose(1, 2)  # (B, N, N')


# --- the concatenation ---

def concat_split(block: NonLocalBlock, q: torch.Tensor, k: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """a_i = w_theta . theta_i (G, N) and b_j = w_phi . phi_j (G, N'): w_f split over [theta, phi]."""
    w_theta, w_phi = block.concat_proj.weight[0].split(block.inter_channels)
    return w_theta @ q, w_phi @ k  # (d,) @ (G, d, N) -> (G, N)


def concat_attend(block: NonLocalBlock, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    a, b = concat_split(block, q, k)  # (G, N), (G, N')
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


def concat_weights(block: NonLocalBlock, q: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    a, b = concat_split(block, q, k)  # (G, N), (G, N')
    return torch.relu(a.unsqueeze(2) + b.unsqueeze(1)) / k.shape[2]


def relu_concat(theta_i: torch.Tensor, phi_j: torch.Tensor, block: NonLocalBlock) -> torch.Tensor:
    return torch.relu(block.concat_proj.weight[0].to(theta_i.dtype) @ torch.cat([theta_i, phi_j]))


def concat_scores(block: NonLocalBlock, q: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    """ReLU(a_i + b_j): w_f's two halves applied to theta and phi, then added over the pairs."""
    w_theta, w_phi = block.concat_proj.weight[0].split(block.inter_channels)
    return F.relu((q @ w_theta).unsqueeze(2) + (k @ w_phi).unsqueeze(1))  # (B, N, N')


def concat_ports_scores(block: NonLocalBlock, q: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    """As the common ports: theta and phi repeated to (B, C', N, N') each, concatenated to (B, 2C', N, N'),
    projected by w_f as a 1x1 conv."""
    n, nk = q.shape[1], k.shape[1]
    theta = q.transpose(1, 2).unsqueeze(3).expand(-1, -1, n, nk)  # (B, C', N, N')
    phi = k.transpose(1, 2).unsqueeze(2).expand(-1, -1, n, nk)  # (B, C', N, N')
    pairs = torch.cat([theta, phi], dim=1)  # (B, 2C', N, N')
    w_f = block.concat_proj.weight.view(1, -1, 1, 1)  # (1, 2C', 1, 1): w_f as a 1x1 conv
    return F.relu(F.conv2d(pairs, w_f)).squeeze(1)  # (B, N, N')


# model.backbone.nl.pairwise -> its record, in the paper's order (nlstudy.choices.PAIRWISE; tests/test_choices.py)
FORMS: dict[str, Pairwise] = {form.name: form for form in (
    Pairwise("gaussian", "exp(x_i . x_j) / sum_j", embedded=False, softmax=True, projects_pairs=False,
             attend=softmax_attend, weights=softmax_weights, pair=exp_dot, scores=dot_logits, cost=softmax_cost),
    Pairwise("embedded_gaussian", "exp(theta_i . phi_j) / sum_j", embedded=True, softmax=True, projects_pairs=False,
             attend=softmax_attend, weights=softmax_weights, pair=exp_dot, scores=dot_logits, cost=softmax_cost),
    Pairwise("dot_product", "theta_i . phi_j / N", embedded=True, softmax=False, projects_pairs=False,
             attend=dot_attend, weights=dot_weights, pair=dot, scores=dot_scores, cost=dot_cost),
    Pairwise("concatenation", "ReLU(w_f . [theta_i, phi_j]) / N", embedded=True, softmax=False, projects_pairs=True,
             attend=concat_attend, weights=concat_weights, pair=relu_concat, scores=concat_scores,
             ports_scores=concat_ports_scores),
)}
SOFTMAX_FORMS = tuple(name for name, form in FORMS.items() if form.softmax)  # where model.backbone.nl.scale applies
