"""``MLP``: the fully connected stack every MLP model in minigen is built from."""
from ..validation import check_option
from .activation import ELU, LeakyReLU, ReLU, Sigmoid, Softplus, Tanh
from .container import Sequential
from .linear import Linear

__all__ = ["MLP"]

ACTIVATIONS = {"relu": ReLU, "tanh": Tanh, "sigmoid": Sigmoid, "elu": ELU,
               "leaky_relu": LeakyReLU, "softplus": Softplus}


class MLP(Sequential):
    """Linear(sizes[0], sizes[1]), activation, Linear(sizes[1], sizes[2]), ..., Linear(.., sizes[-1]):
    an activation between layers, none after the last. ``MLP([D, L])`` is one linear map."""

    def __init__(self, sizes, activation="relu"):
        sizes = list(sizes)
        if len(sizes) < 2:
            raise ValueError(f"MLP: sizes needs at least an input and an output size, got {sizes}")
        check_option(activation, "activation", tuple(ACTIVATIONS))
        layers = []
        for n_in, n_out in zip(sizes[:-1], sizes[1:]):
            layers += [Linear(n_in, n_out), ACTIVATIONS[activation]()]
        super().__init__(*layers[:-1])
