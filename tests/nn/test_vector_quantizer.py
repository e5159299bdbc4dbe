"""VectorQuantizer: nearest-code assignment, straight-through gradients, the two losses, EMA."""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import minigen
from devices import on_device, to_host
from minigen.nn import VectorQuantizer


def make_vq(K, D, seed=0, **kwargs):
    minigen.manual_seed(seed)
    return VectorQuantizer(K, D, **kwargs).double()


def random_z(shape, seed):
    return minigen.tensor(np.random.default_rng(seed).standard_normal(shape), requires_grad=True)


@settings(max_examples=10)
@given(K=st.integers(1, 7), D=st.integers(1, 4), n=st.integers(1, 3), side=st.integers(1, 3),
       seed=st.integers(0, 2**16))
def test_assignment_is_brute_force_nearest_neighbour(K, D, n, side, seed):
    vq = make_vq(K, D, seed)
    vq.codebook.data[...] = on_device(np.random.default_rng(seed + 1).standard_normal((K, D)))
    z = np.random.default_rng(seed).standard_normal((n, D, side, side + 1))
    flat = z.transpose(0, 2, 3, 1).reshape(-1, D)
    brute = ((flat[:, None, :] - to_host(vq.codebook)[None]) ** 2).sum(-1)
    np.testing.assert_allclose(to_host(vq.distances(minigen.tensor(flat).data)), brute, atol=1e-12)
    codes = vq(minigen.tensor(z)).codes.numpy()
    assert codes.shape == (n, side, side + 1)
    np.testing.assert_array_equal(codes.reshape(-1), brute.argmin(axis=1))


def test_quantised_output_is_the_chosen_code():
    vq = make_vq(6, 3)
    z = random_z((2, 3, 4, 4), 0)
    out = vq(z)
    np.testing.assert_allclose(out.z_q.numpy(), vq.lookup(out.codes).numpy(), atol=1e-12)
    np.testing.assert_allclose(vq.lookup(out.codes).numpy()[1, :, 2, 3],
                               to_host(vq.codebook)[out.codes.numpy()[1, 2, 3]])


def test_straight_through_gradient_is_the_identity():
    vq = make_vq(5, 3)
    z = random_z((2, 3, 3, 3), 1)
    g = np.random.default_rng(2).standard_normal(z.shape)
    vq(z).z_q.backward(g)
    np.testing.assert_array_equal(to_host(z.grad), g)  # dL/dz_e = dL/dz_q exactly
    assert vq.codebook.grad is None or not to_host(vq.codebook.grad).any()


def test_codebook_gets_gradient_only_from_the_codebook_loss():
    K, D, N = 4, 2, 3
    vq = make_vq(K, D, beta=0.3)
    z = random_z((N, D, 2, 2), 3)
    out = vq(z)
    (out.commitment_loss + (out.z_q * 1.7).sum()).backward()
    assert vq.codebook.grad is None or not to_host(vq.codebook.grad).any()
    # commitment: d/dz beta |z - sg[e_k]|^2 / N = 2 beta (z - e_k) / N (plus the ST identity 1.7)
    e_k = vq.lookup(out.codes).numpy()
    np.testing.assert_allclose(to_host(z.grad), 2 * 0.3 * (z.numpy() - e_k) / N + 1.7, rtol=1e-12)

    z.grad = None
    out = vq(z)
    out.codebook_loss.backward()
    assert z.grad is None or not to_host(z.grad).any()
    flat_z = z.numpy().transpose(0, 2, 3, 1).reshape(-1, D)
    codes = out.codes.numpy().reshape(-1)
    e, expected = to_host(vq.codebook), np.zeros((K, D))
    for j, k in enumerate(codes):  # d/de_i |sg[z_j] - e_i|^2 / N summed over j assigned to i
        expected[k] += 2 * (e[k] - flat_z[j]) / N
    np.testing.assert_allclose(to_host(vq.codebook.grad), expected, rtol=1e-10, atol=1e-14)


def test_losses_match_their_definition():
    vq = make_vq(3, 2, beta=0.25)
    z = random_z((2, 2, 3, 1), 4)
    out = vq(z)
    sq = ((z.numpy() - vq.lookup(out.codes).numpy()) ** 2).sum() / 2
    np.testing.assert_allclose(out.codebook_loss.item(), sq, rtol=1e-12)
    np.testing.assert_allclose(out.commitment_loss.item(), 0.25 * sq, rtol=1e-12)


def test_gradcheck_of_the_losses_with_fixed_codes():
    """A stop-gradient sg[.] is a constant: the codebook loss is checked as a function of the
    codebook alone (z_e held fixed), the commitment loss as a function of z_e alone. (z_q's
    straight-through Jacobian is the identity: test_straight_through_gradient_is_the_identity.)"""
    vq = make_vq(4, 3)
    z = random_z((2, 3, 2, 2), 5)
    codes = vq.nearest(z)
    codes[0, 0, 0] = (codes[0, 0, 0] + 1) % 4  # any assignment: the maths holds for fixed codes
    z_const = minigen.tensor(z.data)
    assert minigen.gradcheck(lambda e: vq(z_const, codes=codes).codebook_loss, [vq.codebook])
    assert minigen.gradcheck(lambda z: vq(z, codes=codes).commitment_loss, [z])


@pytest.mark.parametrize("eps, expected", [(0.0, [0.2, 0.95]),
                                           (0.5, [0.3 / (2.0 / 3.5 * 2.5), 0.95 / (1.5 / 3.5 * 2.5)])])
def test_ema_update_matches_hand_computation(eps, expected):
    vq = make_vq(2, 1, ema=True, decay=0.5, eps=eps)
    vq.codebook[...] = on_device([[0.0], [1.0]])
    vq.ema_sum[...] = on_device([[0.0], [1.0]])
    z = minigen.tensor(np.array([[0.2], [0.4], [0.9]]))  # N=3 latents of D=1: codes 0, 0, 1
    out = vq(z)
    np.testing.assert_array_equal(out.codes.numpy(), [0, 0, 1])
    np.testing.assert_allclose(out.z_q.numpy(), [[0.0], [0.0], [1.0]])  # the codebook before the step
    # N = 0.5 * 1 + 0.5 * n = [1.5, 1.0];  m = 0.5 * [0, 1] + 0.5 * [0.2 + 0.4, 0.9] = [0.3, 0.95]
    np.testing.assert_allclose(to_host(vq.ema_count), [1.5, 1.0])
    np.testing.assert_allclose(to_host(vq.ema_sum[:, 0]), [0.3, 0.95])
    np.testing.assert_allclose(to_host(vq.codebook[:, 0]), expected, rtol=1e-12)
    assert out.codebook_loss.item() == 0 and list(vq.parameters()) == []

    vq.eval()
    before = vq.codebook.copy()
    vq(z)
    np.testing.assert_array_equal(to_host(vq.codebook), to_host(before))  # no update outside training


def test_ema_codebook_converges_to_cluster_means():
    vq = make_vq(2, 1, ema=True, decay=0.9)
    vq.codebook[...] = vq.ema_sum[...] = on_device([[-0.1], [0.1]])
    z = minigen.tensor(np.array([[-3.0], [-1.0], [2.0], [4.0]]))
    for _ in range(300):
        vq(z)
    np.testing.assert_allclose(to_host(vq.codebook[:, 0]), [-2.0, 3.0], rtol=1e-3)


def test_usage_and_perplexity_are_counted_over_the_window_not_the_batch():
    vq = make_vq(4, 1)
    vq.codebook.data[...] = on_device([[0.0], [10.0], [20.0], [30.0]])
    vq(minigen.tensor(np.zeros((8, 1))))           # batch 1: only code 0
    assert vq.perplexity() == pytest.approx(1.0)
    vq(minigen.tensor(np.full((8, 1), 10.0)))      # batch 2: only code 1
    np.testing.assert_array_equal(to_host(vq.usage), [8, 8, 0, 0])
    assert vq.perplexity() == pytest.approx(2.0)   # each batch alone: 1
    vq(minigen.tensor(np.array([[20.0], [30.0]] * 8)))
    assert vq.perplexity() == pytest.approx(4.0)   # uniform over K codes: K
    vq.eval()
    vq(minigen.tensor(np.zeros((100, 1))))
    np.testing.assert_array_equal(to_host(vq.usage), [8, 8, 8, 8])  # eval does not count
    vq.reset_usage()
    with pytest.raises(ValueError, match="reset_usage"):
        vq.perplexity()


@pytest.mark.parametrize("ema", [False, True])
def test_restart_dead_codes_moves_them_to_encoder_outputs(ema):
    vq = make_vq(4, 2, ema=ema)
    e = vq.codebook if ema else vq.codebook.data
    e[...] = on_device([[0.0, 0.0], [0.1, 0.0], [50.0, 50.0], [60.0, 60.0]])
    z = random_z((6, 2), 6)
    vq(z)
    used = set(to_host(vq.usage).nonzero()[0].tolist())
    assert not used & {2, 3}
    assert vq.restart_dead_codes(z, generator=0) == 4 - len(used)
    flat, codebook = z.numpy(), to_host(e)
    for k in {2, 3}:
        assert any(np.allclose(codebook[k], row) for row in flat)  # now an encoder output
    if ema:
        np.testing.assert_array_equal(to_host(vq.ema_count[[2, 3]]), 1)
        np.testing.assert_array_equal(to_host(vq.ema_sum[[2, 3]]), codebook[[2, 3]])
    vq.reset_usage()
    vq(z)
    assert vq.usage[2] > 0 and vq.usage[3] > 0


BAD_INPUT = [  # (name, call(vq), exception, message pattern); vq has K = 4, D = 3
    ("wrong embedding axis", lambda vq: vq(minigen.tensor(np.zeros((2, 2, 4, 4)))), ValueError,
     r"\(N, 3, \*spatial\)"),
    ("integer z_e", lambda vq: vq(np.zeros((2, 3, 2), dtype=int)), TypeError, "floats"),
    ("NaN in z_e", lambda vq: vq(minigen.tensor(np.full((2, 3), np.nan))), ValueError, "finite"),
    ("z_e a list", lambda vq: vq([[0.0, 0.0, 0.0]]), TypeError, "Tensor or an array"),
    ("code too large", lambda vq: vq.lookup(np.array([[0, 4]])), ValueError, r"\[0, 4\)"),
    ("negative code", lambda vq: vq.lookup(np.array([[-1, 0]])), ValueError, r"\[0, 4\)"),
    ("fractional code", lambda vq: vq.lookup(np.array([[0.5, 1.0]])), TypeError, "integer"),
    ("scalar code", lambda vq: vq.lookup(np.array(1)), ValueError, "scalar"),
    ("fixed codes of the wrong shape", lambda vq: vq(minigen.tensor(np.zeros((2, 3, 4))),
                                                     codes=np.zeros((2, 3), dtype=int)), ValueError, "shape"),
    ("num_embeddings 0", lambda vq: VectorQuantizer(0, 3), ValueError, "num_embeddings"),
    ("embedding_dim 0", lambda vq: VectorQuantizer(4, 0), ValueError, "embedding_dim"),
    ("negative beta", lambda vq: VectorQuantizer(4, 3, beta=-0.1), ValueError, "beta"),
    ("decay 1", lambda vq: VectorQuantizer(4, 3, ema=True, decay=1.0), ValueError, "decay"),
    ("perplexity before counting", lambda vq: vq.perplexity(), ValueError, "reset_usage"),
]


@pytest.mark.parametrize("call, error, match", [row[1:] for row in BAD_INPUT],
                         ids=[row[0] for row in BAD_INPUT])
def test_bad_input_is_rejected(call, error, match):
    with pytest.raises(error, match=match):
        call(make_vq(4, 3))
