"""Training (optional extra ``dctoon[train]``, needs PyTorch): data preparation, the texture
translation network (TTN) trainer, content calibration (CCN, StyleGAN2) and evaluation.

Entry points (each takes one settings dataclass, see :mod:`dctoon.train.cli` for the flags):
``prepare.prepare(PrepareSettings)``, ``distill.distill(DistillSettings)``, ``ttn.train_ttn(TTNSettings)``,
``export.export(ExportSettings)``, ``ccn.run_ccn(CCNSettings)``, ``evaluate.evaluate(EvalSettings)``.
"""
