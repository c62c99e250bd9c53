"""Optimizers from scratch, shaped like ``torch.optim``.

``from lamb_edu import optim`` gives ``optim.SGD``, ``optim.Adagrad``, ``optim.RMSprop``,
``optim.Adam``, ``optim.AdamW``, ``optim.LARS``, ``optim.LAMB``, ``optim.Lookahead``, the
``optim.Optimizer`` base class, ``optim.param_groups_no_decay`` and the learning-rate
``optim.schedules``. The pieces LAMB shares with Adam and LARS live in ``optim.functional``, the
fused (blocked, threaded, CUDA) forms of Adam, AdamW and LAMB in ``optim.fused``;
``optim.flatten_state_dict`` / ``optim.unflatten_state_dict`` turn a state dict into arrays for
``np.savez`` and back.
"""

from lamb_edu.optim import functional, schedules
from lamb_edu.optim.adagrad import Adagrad
from lamb_edu.optim.adam import Adam
from lamb_edu.optim.adamw import AdamW
from lamb_edu.optim.lamb import LAMB
from lamb_edu.optim.lars import LARS
from lamb_edu.optim.lookahead import Lookahead
from lamb_edu.optim.optimizer import Optimizer, flatten_state_dict, unflatten_state_dict
from lamb_edu.optim.param_groups import param_groups_no_decay
from lamb_edu.optim.rmsprop import RMSprop
from lamb_edu.optim.sgd import SGD

__all__ = [
    "Optimizer", "SGD", "Adagrad", "RMSprop", "Adam", "AdamW", "LARS", "LAMB", "Lookahead",
    "param_groups_no_decay", "schedules", "flatten_state_dict", "unflatten_state_dict", "functional",
]
