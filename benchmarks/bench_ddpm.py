"""One DDPM training step with the U-Net denoiser: minigen beside PyTorch (CPU) with the same
architecture, in one run.

    python benchmarks/bench_ddpm.py                      # 8x8 digits-sized images, batch 64
    python benchmarks/bench_ddpm.py --size 28 --batch 32 # MNIST-sized
    OPENBLAS_NUM_THREADS=1 python benchmarks/bench_ddpm.py --threads 1   # on a busy machine

The step: t ~ U{0..T-1}, eps ~ N(0, I), x_t = sqrt(abar_t) x_0 + sqrt(1 - abar_t) eps, the
simple loss mean (eps - eps_theta(x_t, t))^2 (Ho et al. 2020, Eq. 14), backward, and an Adam
update. The network is minigen.nn.UNet(1, 1, base_channels, depth, time_embedding_dim): per
block conv3x3-GroupNorm-SiLU, + Linear(SiLU(temb)), conv3x3-GroupNorm-SiLU; max-pooling down,
2x2 transposed convolutions up, skip concatenation, a 1x1 head. The PyTorch network is written
out below with the same layers in the same order; minigen's initial weights are copied into it
and the two losses on the same (x_0, t, eps) must agree before anything is timed (float32,
so to about 1e-5). PyTorch is optional: without it only minigen is timed.

Prints the median time per step (forward + backward + Adam) of each, interleaved so that a
change in the machine's load hits both alike, and their ratio.
"""
import argparse
import math

from common import median_times, set_blas_threads


def parse():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=8, help="image side (8: digits, 28: MNIST)")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--base-channels", type=int, default=32)
    parser.add_argument("--depth", type=int, default=2)
    parser.add_argument("--time-dim", type=int, default=128)
    parser.add_argument("--timesteps", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--threads", type=int, default=2)
    return parser.parse_args()


def torch_unet(torch, base, depth, time_dim):
    """The same network as minigen.nn.UNet(1, 1, base, depth, time_dim), in torch.nn."""
    nn, F = torch.nn, torch.nn.functional

    class Block(nn.Module):
        def __init__(self, c_in, c_out):
            super().__init__()
            self.conv1, self.conv2 = nn.Conv2d(c_in, c_out, 3, padding=1), nn.Conv2d(c_out, c_out, 3, padding=1)
            groups = math.gcd(c_out, 8)
            self.norm1, self.norm2 = nn.GroupNorm(groups, c_out), nn.GroupNorm(groups, c_out)
            self.time_proj = nn.Linear(time_dim, c_out)

        def forward(self, x, temb):
            h = F.silu(self.norm1(self.conv1(x))) + self.time_proj(F.silu(temb))[:, :, None, None]
            return F.silu(self.norm2(self.conv2(h)))

    class UNet(nn.Module):
        def __init__(self):
            super().__init__()
            channels = [base * 2 ** level for level in range(depth + 1)]
            self.time_mlp = nn.Sequential(nn.Identity(), nn.Linear(time_dim, time_dim), nn.SiLU(),
                                          nn.Linear(time_dim, time_dim))
            self.down = nn.ModuleList(Block(a, b) for a, b in zip([1] + channels[:-1], channels))
            self.up = nn.ModuleList(nn.ConvTranspose2d(channels[i + 1], channels[i], 2, stride=2)
                                    for i in reversed(range(depth)))
            self.up_blocks = nn.ModuleList(Block(2 * channels[i], channels[i]) for i in reversed(range(depth)))
            self.head = nn.Conv2d(channels[0], 1, 1)

        def forward(self, x, t):
            half = time_dim // 2
            freqs = 10000.0 ** (-torch.arange(half, dtype=torch.float32) / half)
            angle = t.float()[:, None] * freqs
            temb = self.time_mlp(torch.cat([angle.sin(), angle.cos()], dim=1))
            skips, h = [], x
            for level, block in enumerate(self.down):
                if level:
                    h = F.max_pool2d(h, 2)
                h = block(h, temb)
                skips.append(h)
            skips.pop()
            for up, block in zip(self.up, self.up_blocks):
                h = block(torch.cat([skips.pop(), up(h)], dim=1), temb)
            return self.head(h)

    return UNet()


def main():
    args = parse()
    set_blas_threads(args.threads)
    import numpy as np

    import minigen
    from minigen.models import DDPM
    from minigen.optim import Adam

    minigen.manual_seed(0)
    unet = minigen.nn.UNet(1, 1, args.base_channels, args.depth, args.time_dim)
    model = DDPM(unet, (1, args.size, args.size), timesteps=args.timesteps)
    opt = Adam(model.parameters(), lr=1e-4)
    rng = np.random.default_rng(0)
    x0 = (rng.random((args.batch, 1, args.size, args.size)) * 2 - 1).astype(np.float32)
    n_params = sum(p.size for p in model.parameters())
    print(f"DDPM training step: U-Net(1, 1, base_channels={args.base_channels}, depth={args.depth}, "
          f"time_embedding_dim={args.time_dim}), {n_params} parameters; batch {args.batch} of "
          f"{args.size}x{args.size}; {args.threads} BLAS threads")

    def minigen_step():
        opt.zero_grad()
        model.loss(x0, generator=rng).backward()
        opt.step()

    steps = {"minigen": minigen_step}
    try:
        import torch
    except ImportError:
        torch = None
        print("PyTorch is not installed: timing minigen alone")
    if torch is not None:
        torch.set_num_threads(args.threads)
        net = torch_unet(torch, args.base_channels, args.depth, args.time_dim)
        torch_params = dict(net.named_parameters())
        assert sorted(torch_params) == sorted(name for name, _ in unet.named_parameters()), \
            "the two networks have different parameters"
        for name, p in unet.named_parameters():  # same names and layouts (PyTorch's)
            torch_params[name].data.copy_(torch.from_numpy(p.numpy().copy()))
        t = rng.integers(0, args.timesteps, args.batch)
        eps = rng.standard_normal(x0.shape).astype(np.float32)
        sqrt_ab = torch.tensor(np.sqrt(model.alpha_bar), dtype=torch.float32)
        sqrt_1mab = torch.tensor(np.sqrt(1 - model.alpha_bar), dtype=torch.float32)

        def torch_loss(x0_t, t_t, eps_t):
            xt = sqrt_ab[t_t][:, None, None, None] * x0_t + sqrt_1mab[t_t][:, None, None, None] * eps_t
            return ((net(xt, t_t) - eps_t) ** 2).mean()

        ours = float(model.loss(x0, t, eps).item())
        with torch.no_grad():
            theirs = float(torch_loss(torch.from_numpy(x0), torch.from_numpy(t), torch.from_numpy(eps)))
        print(f"same weights, same (x0, t, eps): loss minigen {ours:.6f}, PyTorch {theirs:.6f}")
        assert abs(ours - theirs) <= 1e-4 * max(1.0, abs(theirs)), "the two networks disagree"
        torch_opt = torch.optim.Adam(net.parameters(), lr=1e-4)
        x0_t = torch.from_numpy(x0)

        def torch_step():
            torch_opt.zero_grad()
            t_t = torch.randint(0, args.timesteps, (args.batch,))
            torch_loss(x0_t, t_t, torch.randn_like(x0_t)).backward()
            torch_opt.step()

        steps["PyTorch"] = torch_step
    times = median_times(steps, args.repeats, warmup=2)
    for name, seconds in times.items():
        print(f"{name:>8}: {1000 * seconds:8.1f} ms per step (median of {args.repeats})")
    if "PyTorch" in times:
        print(f"minigen / PyTorch: {times['minigen'] / times['PyTorch']:.2f}x")


if __name__ == "__main__":
    main()
