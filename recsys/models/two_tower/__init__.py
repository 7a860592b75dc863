"""Two-tower retriever (PyTorch) with a sequence-aware user tower.

* :mod:`~recsys.models.two_tower.network`   the towers as a ``torch.nn.Module``
* :mod:`~recsys.models.two_tower.tower`     :class:`TwoTower`: a trained model at inference time
* :mod:`~recsys.models.two_tower.training`  :func:`train_two_tower`
"""

from recsys.models.two_tower.tower import TwoTower
from recsys.models.two_tower.training import train_two_tower

__all__ = ["TwoTower", "train_two_tower"]
