"""Shared by the flow tests: the table of transforms, random parameters, and an independent
Jacobian by central differences."""
import numpy as np

import minigen
from devices import on_device, to_host
from minigen import flows


class WithContext(flows.Transform):
    """An IAF / MAF layer with a fixed context, as a plain transform (for the generic tests)."""

    def __init__(self, layer, context):
        super().__init__()
        self.layer, self.context = layer, context
        self.event_shape = layer.event_shape

    def forward(self, z):
        return self.layer(z, self.context)

    def inverse(self, x):
        return self.layer.inverse(x, self.context)


def _iaf_with_context():
    ctx = minigen.tensor(on_device(np.random.default_rng(5).standard_normal((1, 2))), dtype="float64")
    return WithContext(flows.IAF(3, (8,), context_dim=2), ctx)


V, I = (3,), (2, 2, 4)  # a vector example and an image example
CB = flows.checkerboard_mask
# name -> (factory, example shape, has an inverse)
CASES = {
    "Affine": (lambda: flows.Affine(V), V, True),
    "Affine-per-channel": (lambda: flows.Affine((2, 1, 1)), I, True),
    "Logit": (lambda: flows.Logit(0.05), V, True),
    "ActNorm": (lambda: flows.ActNorm(3), V, True),
    "ActNorm-image": (lambda: flows.ActNorm(2), I, True),
    "Planar": (lambda: flows.Planar(3), V, False),
    "Radial": (lambda: flows.Radial(3), V, False),
    "AdditiveCoupling-0": (lambda: flows.AdditiveCoupling(CB(V, 0), (8,)), V, True),
    "AdditiveCoupling-1": (lambda: flows.AdditiveCoupling(CB(V, 1), (8,)), V, True),
    "AdditiveCoupling-image": (lambda: flows.AdditiveCoupling(CB(I, 0), hidden_channels=4), I, True),
    "AffineCoupling-0": (lambda: flows.AffineCoupling(CB(V, 0), (8, 8)), V, True),
    "AffineCoupling-1": (lambda: flows.AffineCoupling(CB(V, 1), (8,)), V, True),
    "AffineCoupling-checkerboard-0": (lambda: flows.AffineCoupling(CB(I, 0), hidden_channels=4), I, True),
    "AffineCoupling-checkerboard-1": (lambda: flows.AffineCoupling(CB(I, 1), hidden_channels=4), I, True),
    "AffineCoupling-channel-0": (lambda: flows.AffineCoupling(flows.channel_mask(2, 0), hidden_channels=4), I, True),
    "AffineCoupling-channel-1": (lambda: flows.AffineCoupling(flows.channel_mask(2, 1), hidden_channels=4,
                                                              n_blocks=0), I, True),
    "MAF": (lambda: flows.MAF(3, (8, 8)), V, True),
    "MAF-reverse": (lambda: flows.MAF(3, (8,), reverse=True), V, True),
    "IAF": (lambda: flows.IAF(3, (8, 8)), V, True),
    "IAF-reverse": (lambda: flows.IAF(3, (8,), reverse=True), V, True),
    "IAF-context": (_iaf_with_context, V, True),
    "Invertible1x1Conv": (lambda: flows.Invertible1x1Conv(3), V, True),
    "Invertible1x1Conv-LU": (lambda: flows.Invertible1x1Conv(3, lu=True), V, True),
    "Invertible1x1Conv-image": (lambda: flows.Invertible1x1Conv(2), I, True),
    "Invertible1x1Conv-image-LU": (lambda: flows.Invertible1x1Conv(2, lu=True), I, True),
    "Squeeze": (lambda: flows.Squeeze(), (8, 2, 2), True),
    "Sequential": (lambda: flows.Sequential(flows.AffineCoupling(CB(V, 0), (8,)), flows.MAF(3, (8,)),
                                            flows.Invertible1x1Conv(3, lu=True), flows.Affine(V)), V, True),
}
INVERTIBLE = [name for name, (_, _, inv) in CASES.items() if inv]


def make(name, seed, scale):
    """Transform ``name`` in float64 with every parameter moved from its initial value by
    ``scale`` * N(0, 1) (so couplings are no longer the identity), ActNorm marked initialised."""
    minigen.manual_seed(seed)
    factory, shape, _ = CASES[name]
    t = factory().double()
    rng = np.random.default_rng(seed)
    for p in t.parameters():
        p.data += on_device(scale * rng.standard_normal(p.shape))
    for m in t.modules():
        if isinstance(m, flows.ActNorm):
            m.initialized[...] = True
    return t, shape


def inputs(shape, seed, n=2, scale=1.0):
    rng = np.random.default_rng(seed + 1)
    return minigen.tensor(on_device(scale * rng.standard_normal((n,) + shape)), dtype="float64")


def jacobian_log_det(fn, x, eps=1e-5):
    """log |det df/dx| per example by central differences (every example perturbed at once:
    the transforms act on each example separately)."""
    x = to_host(x)
    n, d = x.shape[0], x[0].size
    flat = x.reshape(n, d)
    jac = np.zeros((n, d, d))
    with minigen.no_grad():
        for j in range(d):
            step = np.zeros_like(flat)
            step[:, j] = eps
            plus = to_host(fn(minigen.tensor(on_device((flat + step).reshape(x.shape))))[0]).reshape(n, d)
            minus = to_host(fn(minigen.tensor(on_device((flat - step).reshape(x.shape))))[0]).reshape(n, d)
            jac[:, :, j] = (plus - minus) / (2 * eps)
    sign, log_det = np.linalg.slogdet(jac)
    assert np.all(sign != 0), "singular Jacobian"
    return log_det
