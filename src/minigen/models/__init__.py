"""minigen's models, in two families with one contract each.

Estimators (``GaussianMixture``, ``BayesianGaussianMixture``, ``GaussianMixtureCAVI``,
``FactorAnalysis``, ``PPCA``, ``KMeans``, ``RBM``, ``DBN``, ``DBM``, ``LatentDirichletAllocation``,
``BayesianNetwork``, ``MarkovChain``, ``IsingModel``): the scikit-learn contract, written in
``minigen.models.estimator``. Raw arrays (NumPy or CuPy), no autograd.

- every setting is an ``__init__`` argument; ``fit(X)`` returns ``self``; fitted attributes end
  in ``_``; ``repr`` shows valid constructor arguments;
- ``score_samples(X)``: per-example log-likelihood (or the bound the model computes) in nats,
  shape (N,); ``score(X)``: its mean;
- ``sample(n_samples=1, random_state=None)``; randomness only through ``random_state``
  (None, an int or a Generator);
- iterative fits run the one loop ``estimator.coordinate_ascent``: ``tol`` is the change of the
  per-sample objective between sweeps; ``n_iter_``, ``converged_``, and a
  ``ConvergenceWarning`` when ``max_iter`` is reached;
- ``state_dict()`` / ``load_state_dict(state)``: settings and fitted attributes as arrays, for
  ``minigen.save`` / ``minigen.load``.

Neural models (``VAE``, ``ConvVAE``, ``Autoencoder``, ``PixelCNN``, ``GatedPixelCNN``, ``VQVAE``,
the flows, ``PixelRNN``, ``LSTMLanguageModel``, ``DDPM``, ``GAN`` ...): the PyTorch-Module
contract, on ``minigen.nn.Module``.

- ``loss(x, ...)`` is the scalar tensor to minimise;
- ``log_prob(x)`` (exact) or ``log_likelihood(x, n_samples)`` (an estimate) is per example,
  shape (N,), in nats;
- ``sample(n, ..., generator=None)``; randomness only through ``generator`` (None: the global
  generator seeded by ``minigen.manual_seed``);
- each model's docstring says in one sentence what ``forward`` returns;
- ``model.dtype`` and ``model.device`` are those of its parameters; the constructor's arguments
  are recorded, so ``repr`` is valid constructor arguments and ``Model.load(path)`` /
  ``minigen.load_model(path)`` rebuild a saved model in one call.
"""
from .rbm import RBM
from .gmm import GaussianMixture
from .dbn import DBN
from .factor_analysis import PPCA, FactorAnalysis
from .cavi import GaussianMixtureCAVI
from .bayesian_gmm import BayesianGaussianMixture
from .vae import VAE, ConvVAE
from .pixelcnn import PixelCNN, GatedPixelCNN
from .vqvae import VQVAE
from .language_model import LSTMLanguageModel
from .nice import NICE
from .realnvp import RealNVP
from .ddpm import DDPM
from .sentence_vae import SentenceVAE, kl_annealing
from .kmeans import KMeans
from .epll import epll_denoise, epll_objective
from .bayes_net import BayesianNetwork
from .markov_chain import MarkovChain
from .ising import IsingModel
from .lda import LatentDirichletAllocation
from .vqvae2 import VQVAE2
from .gan import GAN
from .autoencoder import Autoencoder
from .hierarchical_vae import HierarchicalVAE
from .pixelrnn import PixelRNN
from .dbm import DBM
