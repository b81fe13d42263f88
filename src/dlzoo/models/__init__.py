"""Networks: plain ``nn.Module`` builders in a registry keyed by name (``list_models``/``get_model``).

Every builder takes ``input_shape`` (without the batch dim) and ``num_classes`` plus its own keyword
arguments. Importing this package imports every module in it (``dlzoo.plugins``), so a new family is one
new file here plus one ``conf/model/<name>.yaml``: no import list to edit.
"""

from dlzoo.models.registry import get_model, list_models, register_model  # noqa: F401
from dlzoo.models import (  # noqa: F401,E402  (registers the families)
    alexnet, cnn1d, densenet, generative, googlenet, lenet, mlp, mobilenet, resnet, rnn, seq2seq, transformer, vgg,
)
from dlzoo.models import detection  # noqa: F401,E402  (detectors: forward + loss + detect)
import sys as _sys  # noqa: E402

from dlzoo.plugins import import_submodules as _import_submodules, load_entry_points as _load_entry_points  # noqa: E402

# every family file of this package, including ones no line above names, then installed plugins
_import_submodules(_sys.modules[__name__])
_load_entry_points()
