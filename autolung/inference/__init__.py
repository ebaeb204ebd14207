"""Inference: sliding-window prediction, model loading, predictor, ensembling, postprocessing, bundles."""
