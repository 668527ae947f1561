"""The SA layer against a loop-based reading of docs/model.md "The network", and the shuffle map."""

from __future__ import annotations

import torch

from model.sa_layer import ShuffleAttention, channel_shuffle, shuffle_permutation


def reference_sa(x: torch.Tensor, sa: ShuffleAttention) -> torch.Tensor:
    """docs/model.md "The network" step by step, one group and one channel at a time."""
    b, c = x.shape[:2]
    g = sa.groups
    per, half = c // g, c // (2 * g)
    out = torch.empty_like(x)
    for n in range(b):
        for grp in range(g):
            for j in range(per):
                v = x[n, grp * per + j]
                if j < half:
                    s = v.mean()
                    gate = torch.sigmoid(sa.cweight[0, j, 0, 0] * s + sa.cbias[0, j, 0, 0])
                else:
                    k = j - half
                    mean, var = v.mean(), v.var(unbiased=False)
                    norm = (v - mean) / torch.sqrt(var + 1e-5) * sa.gn.weight[k] + sa.gn.bias[k]
                    gate = torch.sigmoid(sa.sweight[0, k, 0, 0] * norm + sa.sbias[0, k, 0, 0])
                out[n, grp * per + j] = v * gate
    shuffled = torch.empty_like(out)
    for i in range(2):
        for k in range(c // 2):
            shuffled[:, k * 2 + i] = out[:, i * (c // 2) + k]
    return shuffled


def test_sa_matches_reference_with_random_parameters() -> None:
    torch.manual_seed(0)
    sa = ShuffleAttention(64, groups=4).eval()
    with torch.no_grad():
        for p in sa.parameters():
            p.uniform_(-1.5, 1.5)
    x = torch.randn(2, 64, 5, 7) * 2 + 0.5
    with torch.no_grad():
        torch.testing.assert_close(sa(x), reference_sa(x, sa), atol=1e-5, rtol=1e-5)


def test_parameter_init_and_names() -> None:
    sa = ShuffleAttention(256, groups=64)
    shapes = {k: tuple(v.shape) for k, v in sa.state_dict().items()}
    assert shapes == {
        "cweight": (1, 2, 1, 1),
        "cbias": (1, 2, 1, 1),
        "sweight": (1, 2, 1, 1),
        "sbias": (1, 2, 1, 1),
        "gn.weight": (2,),
        "gn.bias": (2,),
    }
    assert sa.cweight.eq(0).all() and sa.cbias.eq(1).all()
    assert sa.sweight.eq(0).all() and sa.sbias.eq(1).all()
    assert sa.gn.num_groups == 2 and sa.gn.eps == 1e-5


def test_shuffle_permutation_is_channel_shuffle() -> None:
    x = torch.randn(1, 12, 2, 2)
    perm = shuffle_permutation(12, 2)
    assert torch.equal(channel_shuffle(x, 2), x[:, perm])
    assert perm.tolist() == [0, 6, 1, 7, 2, 8, 3, 9, 4, 10, 5, 11]


def test_sa_scripts() -> None:
    sa = ShuffleAttention(32, groups=2).eval()
    scripted = torch.jit.script(sa)
    x = torch.randn(1, 32, 4, 4)
    torch.testing.assert_close(scripted(x), sa(x))
