"""lamb-edu: deep-learning optimizers from scratch, centred on LAMB.

``from lamb_edu import Tensor, nn, optim`` gives the autograd tensor, the layers and the
optimizers; ``lamb_edu.backend`` chooses NumPy or CuPy.
"""

from lamb_edu import backend, host_memory, nn
from lamb_edu.autograd import Tensor, no_grad

host_memory.keep_freed_memory()  # reuse freed activations instead of page-faulting them back each step

__version__ = "0.1.0"
__all__ = ["Tensor", "no_grad", "nn", "backend", "__version__"]
