"""Running nnU-Net v2 trained models in autolung: safe loading, plans translation, weight mapping, import.

- :mod:`autolung.nnunet.checkpoint` reads nnU-Net checkpoints without running code;
- :mod:`autolung.nnunet.translate` turns ``plans.json`` + ``dataset.json`` into autolung plans,
  refusing what autolung's network cannot represent;
- :mod:`autolung.nnunet.weights` renames nnU-Net's state dict onto autolung's U-Net;
- :mod:`autolung.nnunet.importer` finds model folders and zips and writes autolung configuration
  folders with their provenance.
"""
