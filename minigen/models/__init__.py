from .rbm import RBM
from .gmm import GaussianMixture
from .dbn import DBN
from .factor_analysis import PPCA, FactorAnalysis
from .cavi import GaussianMixtureCAVI
from .bayesian_gmm import BayesianGaussianMixture
from .vae import VAE, ConvVAE
from .pixelcnn import PixelCNN, GatedPixelCNN
from .vqvae import VQVAE
