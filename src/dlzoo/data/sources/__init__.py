"""Dataset sources: one file per dataset, each a ``@register_dataset(...)`` loader (``dlzoo.data.registry``).

Every module in this folder is imported when the registry is first used, so adding a dataset needs no
edit here, in the datamodule or in ``prepare.py``.
"""

import sys

from dlzoo.plugins import import_submodules

import_submodules(sys.modules[__name__])
