"""Flow posteriors for a VAE: amortised planar flows (Rezende & Mohamed 2015, Sec. 4.2 and Eq. 15)
and IAF steps with an encoder context (Kingma et al. 2016, Sec. 4 and Algorithm 1).

The encoder gives q_0(z_0 | x) = N(mu(x), diag sigma(x)^2) and the flow's per-example inputs;
z_0 = mu + sigma eps is pushed through K invertible maps, z_K = f_K o ... o f_1(z_0), and

    log q_K(z_K | x) = log q_0(z_0 | x) - sum_k log |det df_k / dz_{k-1}|
    ELBO(x) = E_q0 [ log p(x | z_K) + log p(z_K) - log q_0(z_0 | x) + sum_k log |det df_k/dz_{k-1}| ]

(Rezende & Mohamed, Eq. 15). Both modules here map (z_0, encoder output) to
(z_K, sum_k log |det df_k / dz_{k-1}|), each (N, D) and (N,).
"""
from .. import nn
from .. import functional as F
from ..validation import check_int
from .made import IAF
from .planar import planar_step

__all__ = ["AmortizedPlanar", "IAFPosterior"]


class AmortizedPlanar(nn.Module):
    """K planar maps whose parameters (u_k, w_k, b_k) are given per example by the encoder.

    ``n_params`` = flow_length * (2 dim + 1) encoder outputs, laid out as K blocks of
    [u_k (dim), w_k (dim), b_k (1)]. Each step keeps w_k^T u_hat_k >= -1 (``planar_step``).
    No parameters of its own.
    """

    def __init__(self, dim, flow_length):
        super().__init__()
        self.dim = check_int(dim, "dim", minimum=1)
        self.flow_length = check_int(flow_length, "flow_length", minimum=1)
        self.n_params = self.flow_length * (2 * self.dim + 1)

    def forward(self, z0, params):
        """(z_K, sum_k log |det df_k/dz_{k-1}|) for z0 (N, dim) and params (N, n_params)."""
        n, d = z0.shape[0], self.dim
        if params.shape != (n, self.n_params):
            raise ValueError(f"AmortizedPlanar: expected params of shape ({n}, {self.n_params}) "
                             f"(flow_length * (2 * dim + 1) per example), got {params.shape}")
        params = F.reshape(params, (n, self.flow_length, 2 * d + 1))
        z, total = z0, None
        for k in range(self.flow_length):
            z, log_det = planar_step(z, params[:, k, :d], params[:, k, d:2 * d], params[:, k, 2 * d])
            total = log_det if total is None else total + log_det
        return z, total


class IAFPosterior(nn.Module):
    """K IAF steps (``IAF`` with a context), the autoregressive order reversed between steps
    (Kingma et al. 2016, Sec. 4); the encoder's extra output h (N, context_dim) is the context."""

    def __init__(self, dim, context_dim, flow_length, hidden_dims=(32, 32)):
        super().__init__()
        self.dim = check_int(dim, "dim", minimum=1)
        self.context_dim = check_int(context_dim, "context_dim", minimum=1)
        self.flow_length = check_int(flow_length, "flow_length", minimum=1)
        self.steps = nn.ModuleList([IAF(dim, hidden_dims, context_dim, reverse=k % 2 == 1)
                                    for k in range(self.flow_length)])

    def forward(self, z0, context):
        """(z_K, sum_k log |det df_k/dz_{k-1}|) for z0 (N, dim) and the context (N, context_dim)."""
        z, total = z0, None
        for step in self.steps:
            z, log_det = step(z, context)
            total = log_det if total is None else total + log_det
        return z, total
