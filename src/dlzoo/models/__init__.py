"""Networks: plain ``nn.Module`` builders in a registry keyed by name (``list_models``/``get_model``).

Every builder takes ``input_shape`` (without the batch dim) and ``num_classes`` plus its own keyword
arguments; importing this package registers every family.
"""

from dlzoo.models.registry import get_model, list_models, register_model  # noqa: F401
from dlzoo.models import (  # noqa: F401,E402  (registers the families)
    alexnet, cnn1d, densenet, generative, googlenet, lenet, mlp, mobilenet, resnet, rnn, seq2seq, transformer, vgg,
)
from dlzoo.models import detection  # noqa: F401,E402  (detectors: forward + loss + detect)
