"""Self-supervised training: config, presets, trainer, checkpoints and torchrun support.

Submodules are imported on use (``focalstack.train.checkpoint`` for inference stays light):
``config`` (TrainConfig and YAML round-trips), ``presets``, ``trainer`` (Trainer), ``checkpoint``
(save / resume / ``load_model``), ``distributed`` (torchrun / DDP).
"""
