"""Self-normalizing networks with fastselu: SELU + AlphaDropout + lecun_normal.

64 dense layers of width 512 fed N(0, 1) inputs.  With lecun_normal weights and the fused
``fastselu.selu_alpha_dropout`` (p = 0.05) the activations keep mean ~0 and variance ~1 in every
layer; ReLU with He initialisation and tanh do not.  The same as ``python -m fastselu demo``:

    python examples/self_normalizing.py [--plot FILE.png]

One layer of the SELU network, in training mode (a fresh mask per layer, drawn from `rng`):

    w = fastselu.lecun_normal((512, 512), rng=rng)
    h = fastselu.selu_alpha_dropout(h @ w, 0.05, seed=rng)

and backward through it, recomputing the mask from the same seed instead of storing it:

    g_z = fastselu.selu_alpha_dropout_backward(g_h, z, 0.05, seed=s)
"""

import sys

from fastselu._demo import main

if __name__ == "__main__":
    sys.exit(main())
