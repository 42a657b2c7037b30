"""The non-local block against the paper's equations, written out position by position."""

from __future__ import annotations

import itertools
import json
import math

import pytest
import torch
import torch.nn.functional as F
from torch.utils._python_dispatch import TorchDispatchMode

from nlstudy.blocks import NonLocalBlock
from nlstudy.blocks.context import GlobalContextBlock, SqueezeExcitationBlock
from nlstudy.blocks.pairwise import FORMS
from nlstudy.blocks.reference import explicit_attention, explicit_forward

PAIRWISE = tuple(FORMS)  # every form's record: a new one is tested by every test below
SHAPES = {1: (2, 6, 7), 2: (2, 6, 4, 5), 3: (2, 6, 3, 4, 5)}  # (B, C, *S), odd sizes on purpose


def conv1x1(conv: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    """A 1x1(x1) conv as a per-position linear map: (B, C, *S) -> (B, C', *S)."""
    w = conv.weight.flatten(1)  # (C', C)
    return torch.einsum("oc,bc...->bo...", w, x) + conv.bias.view(1, -1, *[1] * (x.dim() - 2))


def pool(x: torch.Tensor, kernel) -> torch.Tensor:
    if kernel is None:
        return x
    return {1: F.max_pool1d, 2: F.max_pool2d, 3: F.max_pool3d}[x.dim() - 2](x, kernel, kernel, ceil_mode=True)


def naive(block: NonLocalBlock, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """z and the normalised weights, one (query, key) pair at a time, from eqs. (1)-(6) of the paper."""
    kernel = block.subsample_kernel
    if block.theta is None:  # gaussian: raw x
        theta, phi = x, pool(x, kernel)
    elif block.subsample_order == "before":
        theta, phi = conv1x1(block.theta, x), conv1x1(block.phi, pool(x, kernel))
    else:
        theta, phi = conv1x1(block.theta, x), pool(conv1x1(block.phi, x), kernel)
    g = conv1x1(block.g, pool(x, kernel)) if block.subsample_order == "before" else pool(conv1x1(block.g, x), kernel)
    q_pos = list(itertools.product(*[range(s) for s in x.shape[2:]]))
    k_pos = list(itertools.product(*[range(s) for s in phi.shape[2:]]))
    k = kernel or (1,) * (x.dim() - 2)
    form = FORMS[block.pairwise]

    def allowed(i, j):  # does query position i attend to key position j?
        if block.mode == "space":
            return i[0] == j[0]
        if block.mode == "time":
            return i[1:] == j[1:] and k[1:] == (1, 1)
        return True

    b = x.shape[0]
    att = torch.zeros(b, len(q_pos), len(k_pos), dtype=torch.float64)
    y = torch.zeros(b, g.shape[1], len(q_pos), dtype=torch.float64)
    for n in range(b):
        for qi, i in enumerate(q_pos):
            keys = [kj for kj, j in enumerate(k_pos) if allowed(i, j)]
            ti, f = theta[(n, slice(None), *i)].double(), []
            for kj in keys:
                pj = phi[(n, slice(None), *k_pos[kj])].double()
                f.append(form.pair(ti, pj, block))  # the form's f(x_i, x_j), one pair
            f = torch.stack(f)
            norm = f.sum() if form.softmax else len(keys)  # C(x)
            for kj, w in zip(keys, f / norm):
                att[n, qi, kj] = w
                y[n, :, qi] += w * g[(n, slice(None), *k_pos[kj])].double()
    y = y.view(b, -1, *x.shape[2:]).float()
    return x + block.out_norm(block.out_proj(y)), att.float()


def randomised(block: NonLocalBlock) -> NonLocalBlock:
    """Non-trivial weights everywhere, the output norm included, in eval mode (fixed BN statistics)."""
    torch.manual_seed(1)
    with torch.no_grad():
        for p in block.parameters():
            p.copy_(torch.randn_like(p) * 0.3)
        if isinstance(block.out_norm, torch.nn.BatchNorm1d | torch.nn.BatchNorm2d | torch.nn.BatchNorm3d):
            block.out_norm.running_mean.uniform_(-0.5, 0.5)
            block.out_norm.running_var.uniform_(0.5, 2.0)
    return block.eval()


def forced(block: NonLocalBlock, explicit: bool) -> NonLocalBlock:
    """The block with its explicit (G, N, N') weights path forced on or off, whatever the sizes."""
    block.explicit_min_saving = -math.inf if explicit else math.inf
    block.explicit_max_bytes = math.inf
    return block


CASES = [
    (pw, dim, sub, mode, order, scale)
    for pw in PAIRWISE
    for dim in (1, 2, 3)
    for sub in (False, True, "2x2x2")
    for mode in (("spacetime", "space", "time") if dim == 3 else ("spacetime",))
    for order in ("after", "before")
    for scale in ((False, True) if FORMS[pw].softmax else (False,))
    if not (sub == "2x2x2" and (dim != 3 or mode != "spacetime"))
    if not (order == "before" and not sub)
]


@pytest.mark.parametrize("pairwise,dim,subsample,mode,order,scale", CASES)
def test_forward_and_attention_match_the_paper(pairwise, dim, subsample, mode, order, scale):
    block = randomised(NonLocalBlock(6, dim, pairwise, 4, subsample, mode, subsample_order=order, scale=scale))
    x = torch.randn(*SHAPES[dim])
    want_z, want_att = naive(block, x)
    for explicit in (False, True):  # the default path, and the explicit weights where the form has them
        with torch.no_grad():
            got_z = forced(block, explicit)(x)
        torch.testing.assert_close(got_z, want_z, atol=2e-5, rtol=1e-4)
    torch.testing.assert_close(block.attention(x), want_att, atol=2e-6, rtol=1e-4)
    # the explicit formulations used by the benchmark agree too
    torch.testing.assert_close(explicit_forward(block, x, concat="broadcast").detach(), want_z, atol=2e-5, rtol=1e-4)
    torch.testing.assert_close(explicit_attention(block, x).detach(), want_att, atol=2e-6, rtol=1e-4)


@pytest.mark.parametrize("pairwise", [p for p, form in FORMS.items() if form.ports_scores])
def test_the_ports_formulation_matches(pairwise):
    block = randomised(NonLocalBlock(6, 3, pairwise, 4, True))
    x = torch.randn(*SHAPES[3])
    with torch.no_grad():
        torch.testing.assert_close(block(x), explicit_forward(block, x, concat="repeat"), atol=2e-5, rtol=1e-4)


GRADIENT_CASES = [  # (pairwise, subsample, mode, scale): every backward the block has
    *[(pairwise, True, "spacetime", False) for pairwise in PAIRWISE],
    ("gaussian", False, "spacetime", False),  # k is q: the explicit backward's one product for both
    ("embedded_gaussian", False, "space", True),
    ("dot_product", False, "time", False),
]


@pytest.mark.parametrize("explicit", [False, True], ids=["default", "explicit"])
@pytest.mark.parametrize("pairwise,subsample,mode,scale", GRADIENT_CASES)
def test_fast_paths_have_the_explicit_gradients(pairwise, subsample, mode, scale, explicit):
    block = randomised(NonLocalBlock(6, 3, pairwise, 4, subsample, mode, scale=scale)).train()
    forced(block, explicit)
    x = torch.randn(*SHAPES[3], requires_grad=True)
    grads = []
    for run in (block, lambda inp: explicit_forward(block, inp, concat="broadcast")):
        block.zero_grad()
        x.grad = None
        (run(x) ** 2).sum().backward()
        grads.append([x.grad.clone()] + [p.grad.clone() for p in block.parameters()])
    scale = max(g.abs().max().item() for g in grads[1])
    # biases before a softmax or a train-mode BN have a true gradient of 0: compare those to the overall scale
    for fast, slow in zip(*grads):
        torch.testing.assert_close(fast, slow, atol=1e-3 * scale, rtol=1e-3)


@pytest.mark.parametrize("pairwise", PAIRWISE)
@pytest.mark.parametrize("zero_init", ["norm", "conv"])
def test_fresh_block_is_exactly_the_identity(pairwise, zero_init):
    block = NonLocalBlock(8, 3, pairwise, zero_init=zero_init)
    x = torch.randn(2, 8, 2, 4, 4)
    for mode in (block.train, block.eval):
        mode()
        assert torch.equal(block(x), x)
    assert isinstance(block.out_norm, torch.nn.Identity) == (zero_init == "conv")


@pytest.mark.parametrize("zero_init", ["norm", "conv"])
def test_gradient_reaches_the_zeroed_output_and_then_the_embeddings(zero_init):
    block = NonLocalBlock(8, 3, "embedded_gaussian", zero_init=zero_init)
    x = torch.randn(2, 8, 2, 4, 4)
    (block(x) ** 2).sum().backward()
    zeroed = block.out_norm.weight if zero_init == "norm" else block.out_proj.weight
    assert zeroed.grad.abs().sum() > 0  # "W stays zero" is a myth: its gradient is not zero
    assert block.theta.weight.grad.abs().sum() == 0  # nothing flows past a zero output yet
    torch.optim.SGD(block.parameters(), lr=1.0).step()
    block.zero_grad()
    (block(x) ** 2).sum().backward()
    assert block.theta.weight.grad.abs().sum() > 0  # after one step it does


class LargestTensor(TorchDispatchMode):
    """Records the largest tensor any aten op produces."""

    def __init__(self):
        super().__init__()
        self.numel = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in out if isinstance(out, tuple | list) else (out,):
            if isinstance(t, torch.Tensor):
                self.numel = max(self.numel, t.numel())
        return out


def largest_tensor(block: NonLocalBlock, x: torch.Tensor) -> int:
    """Elements of the largest tensor one forward+backward of the block produces."""
    with LargestTensor() as seen:
        block(x).sum().backward()
    return seen.numel


@pytest.mark.parametrize("pairwise", PAIRWISE)
def test_forward_and_backward_build_the_pairwise_matrix_only_where_it_costs_less_and_fits(pairwise):
    block = NonLocalBlock(8, 3, pairwise, subsample=False).train()
    x = torch.randn(1, 8, 4, 8, 8, requires_grad=True)  # N = N' = 256, d = C' = 4
    n = 4 * 8 * 8
    # the softmax forms' explicit products cost less than the fused kernel's at any size; the dot product's
    # associative (d x C') summary costs less than N x N' weights here; the concatenation form has none
    built = largest_tensor(block, x) >= n * n
    assert built == FORMS[pairwise].softmax, f"{pairwise}: built the N x N matrix: {built}"
    block.explicit_max_bytes = 4 * n * n - 1  # a byte more than the cap: never
    assert largest_tensor(block, x) < n * n // 8
    block.explicit_max_bytes = 4 * n * n  # within the cap, and made to pay: the forms that have them build them
    block.explicit_min_saving = -math.inf
    assert (largest_tensor(block, x) >= n * n) == (FORMS[pairwise].cost is not None)
    with LargestTensor() as seen:
        block.attention(x)
    assert seen.numel >= n * n  # the analysis path does build it


def test_the_dot_product_takes_the_weights_where_groups_are_small():
    # time mode: each group is one pixel's T = 4 frames, so (G, 4, 4) weights cost less than d x C' summaries
    block = NonLocalBlock(32, 3, "dot_product", subsample=False, mode="time").train()
    x = torch.randn(2, 32, 4, 4, 4, requires_grad=True)
    with Recorder() as seen:
        block(x).sum().backward()
    assert (32, 4, 4) in seen.shapes


class Recorder(TorchDispatchMode):
    """The shapes of the tensors the aten ops produce."""

    def __init__(self):
        super().__init__()
        self.shapes = set()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in out if isinstance(out, tuple | list) else (out,):
            if isinstance(t, torch.Tensor):
                self.shapes.add(tuple(t.shape))
        return out


def peak_bytes(step, tmp_path) -> int:
    """Peak of the bytes the CPU allocator holds during `step` beyond what it held before: the running sum of the
    profiler trace's "[memory]" events (+ alloc, - free), as benchmarks/nl_block.py measures it."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        step()
    trace = tmp_path / f"trace-{len(list(tmp_path.iterdir()))}.json"
    prof.export_chrome_trace(str(trace))
    events = sorted((e for e in json.loads(trace.read_text())["traceEvents"] if e.get("name") == "[memory]"),
                    key=lambda e: e["ts"])
    return max(itertools.accumulate((e["args"]["Bytes"] for e in events), initial=0))


@pytest.mark.parametrize("pairwise", [p for p, form in FORMS.items() if form.softmax])
def test_the_softmax_weights_path_holds_one_pairwise_matrix(pairwise, tmp_path):
    block = NonLocalBlock(4, 3, pairwise, subsample=False).train()
    block.explicit_chunk_bytes = 2**16  # chunks of 16 query rows
    x = torch.randn(1, 4, 4, 16, 16, requires_grad=True)  # N = 1024: the weights take 4 MB, the rest 100 kB
    weights = 4 * 1024 * 1024
    ours = peak_bytes(lambda: block(x).sum().backward(), tmp_path)
    port = peak_bytes(lambda: explicit_forward(block, x, concat="broadcast").sum().backward(), tmp_path)
    assert weights <= ours < 1.25 * weights  # one N x N' tensor at a time, beside chunks and linear terms
    assert port > 2 * weights  # the common ports hold two or three


def test_symmetrise_adds_the_transpose_in_place_tile_by_tile():
    from nlstudy.blocks.pairwise import symmetrise_

    a = torch.randn(3, 10, 10)
    want = a + a.transpose(1, 2)
    got = symmetrise_(a, block=4)  # tiles of 4: 3 per side, the last one short
    assert got is a and torch.equal(got, want)


@pytest.mark.parametrize("chunk_bytes", [2 * 30 * 4 * 4, 2**24], ids=["chunks", "autograd"])  # 4 rows; all
@pytest.mark.parametrize("pairwise,subsample", [("gaussian", False), ("embedded_gaussian", True)])
def test_the_chunked_weights_give_the_gradients_of_the_explicit_formulation(pairwise, subsample, chunk_bytes):
    block = randomised(NonLocalBlock(6, 3, pairwise, 4, subsample, scale=True)).train()
    block.explicit_chunk_bytes = chunk_bytes
    block.symmetric_min_width = 1  # the gaussian's one product too
    x = torch.randn(2, 6, 2, 3, 5, requires_grad=True)  # N = 30 (not a multiple of the chunk)
    grads = []
    for run in (block, lambda inp: explicit_forward(block, inp, concat="broadcast")):
        block.zero_grad()
        x.grad = None
        (run(x) ** 2).sum().backward()
        grads.append([x.grad.clone()] + [p.grad.clone() for p in block.parameters()])
    scale = max(g.abs().max().item() for g in grads[1])
    for fast, slow in zip(*grads):
        torch.testing.assert_close(fast, slow, atol=1e-4 * scale, rtol=1e-4)


def test_a_second_backward_through_weights_overwritten_in_place_fails_loudly():
    block = NonLocalBlock(4, 3, "embedded_gaussian", subsample=False).train()
    block.explicit_chunk_bytes = 18 * 4  # one query row a chunk: the in-place backward
    out = block(torch.randn(1, 4, 2, 3, 3, requires_grad=True)).sum()
    out.backward(retain_graph=True)
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        out.backward()


def test_modes_group_positions_as_the_paper_says():
    x = torch.randn(1, 6, 3, 4, 4)
    space = randomised(NonLocalBlock(6, 3, "embedded_gaussian", mode="space", subsample=False)).attention(x)
    time = randomised(NonLocalBlock(6, 3, "embedded_gaussian", mode="time", subsample=False)).attention(x)
    frame = torch.arange(48) // 16
    pixel = torch.arange(48) % 16
    assert torch.all(space[0][frame[:, None] != frame[None, :]] == 0)
    assert torch.all(time[0][pixel[:, None] != pixel[None, :]] == 0)
    torch.testing.assert_close(space.sum(-1), torch.ones(1, 48))
    torch.testing.assert_close(time.sum(-1), torch.ones(1, 48))


def test_subsample_kernels():
    assert NonLocalBlock(4, 1).subsample_kernel == (2,)
    assert NonLocalBlock(4, 2).subsample_kernel == (2, 2)
    assert NonLocalBlock(4, 3).subsample_kernel == (1, 2, 2)
    assert NonLocalBlock(4, 3, subsample="2x2x2").subsample_kernel == (2, 2, 2)
    assert NonLocalBlock(4, 3, subsample=(2, 1, 1)).subsample_kernel == (2, 1, 1)
    assert NonLocalBlock(4, 3, subsample=False).subsample_kernel is None
    assert NonLocalBlock(4, 3, mode="time").subsample_kernel is None  # the paper's kernel pools no time
    assert NonLocalBlock(4, 3).attention(torch.randn(1, 4, 2, 5, 5)).shape == (1, 50, 2 * 3 * 3)  # ceil: no row lost


@pytest.mark.parametrize("kwargs,message", [
    (dict(pairwise="no_such_form"), "valid choices: " + ", ".join(repr(p) for p in FORMS)),
    (dict(mode="frames"), "valid choices: 'spacetime', 'space', 'time'"),
    (dict(dim=4), "unknown dim 4"),
    (dict(dim=2, mode="space"), "needs dim=3"),
    (dict(subsample="3x3"), "3-d pooling kernel"),
    (dict(subsample="2x2x2", mode="space"), "pools across frames"),
    (dict(subsample="1x2x2", mode="time"), "pools across pixels"),
    (dict(pairwise="dot_product", scale=True), "softmax forms"),
    (dict(subsample_order="during"), "'after', 'before'"),
    (dict(zero_init="bn"), "'norm', 'conv'"),
    (dict(inter_channels=0), "inter_channels"),
])
def test_bad_arguments_name_the_valid_choices(kwargs, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        NonLocalBlock(8, **{"dim": 3, **kwargs})


def test_bad_input_shape_is_reported():
    with pytest.raises(ValueError, match=r"expects a \(B, 8, T, H, W\) input"):
        NonLocalBlock(8, 3)(torch.randn(2, 4, 2, 4, 4))


@pytest.mark.parametrize("cls", [GlobalContextBlock, SqueezeExcitationBlock])
def test_comparison_blocks_start_as_identity_and_learn(cls):
    block = cls(16, 3, reduction=4)
    x = torch.randn(2, 16, 2, 3, 3)
    assert torch.equal(block(x), x)
    (block(x) ** 2).sum().backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in block.parameters())


def test_global_context_attention_is_one_map_for_every_query():
    block = GlobalContextBlock(8, 3)
    weights = block.attention(torch.randn(2, 8, 2, 3, 3))
    assert weights.shape == (2, 18)
    torch.testing.assert_close(weights.sum(-1), torch.ones(2))

    # by hand, 3 positions on a line: the logit w_k . x_j reads channel 0 = log 1, log 2, log 3,
    # so the one map is 1/6, 2/6, 3/6 and the context is sum_j w_j x_j
    torch.manual_seed(0)
    block = GlobalContextBlock(2, dim=1, reduction=1)
    with torch.no_grad():
        block.context_logits.weight.copy_(torch.tensor([1.0, 0.0]).view(1, 2, 1))
        block.context_logits.bias.zero_()
        for p in block.transform.parameters():  # a transform that is not the zero map it starts as
            p.copy_(torch.randn_like(p))
    x = torch.tensor([[[0.0, math.log(2), math.log(3)], [6.0, 12.0, -6.0]]])  # (B=1, C=2, N=3)
    torch.testing.assert_close(block.attention(x), torch.tensor([[1 / 6, 2 / 6, 3 / 6]]))
    context = torch.tensor([(2 * math.log(2) + 3 * math.log(3)) / 6, (6 * 1 + 12 * 2 - 6 * 3) / 6])  # (log 108 / 6, 2)
    with torch.no_grad():
        added = block(x) - x  # (1, 2, 3): what each position (query) receives
        expected = block.transform(context.view(1, 2, 1))  # (1, 2, 1)
    assert expected.abs().sum() > 0
    # every query receives the same vector, although the three positions differ
    torch.testing.assert_close(added, expected.expand(1, 2, 3))

    # the non-local block, by contrast, gives each query its own row: gaussian f = exp(x_i x_j) on one
    # channel, x = 0, 1, 2: query 0 scores every key e^0 (uniform), query 2 scores e^0, e^2, e^4
    rows = NonLocalBlock(1, 1, "gaussian", inter_channels=1, subsample=False).attention(
        torch.tensor([[[0.0, 1.0, 2.0]]]))[0]  # (N_query=3, N_key=3)
    torch.testing.assert_close(rows[0], torch.full((3,), 1 / 3))
    torch.testing.assert_close(rows[2], torch.softmax(torch.tensor([0.0, 2.0, 4.0]), 0))
    assert not torch.allclose(rows[0], rows[2], atol=0.1)
