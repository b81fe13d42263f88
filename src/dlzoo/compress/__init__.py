"""Compression of trained pipeline runs: pruning, INT8 quantization and knowledge distillation, each result
measured (``measure``) and recorded as an MLflow run nested under its source run (``runner``).
Entry point: ``python -m dlzoo.compress RUN_DIR --recipes ...`` (``cli``)."""
