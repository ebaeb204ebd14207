"""Benchmarking: run the whole pipeline on several datasets and report the results.

``runner.run_benchmark`` drives verify, plan, preprocess, training, cross-validation, model
choice and evaluation per dataset (resumable through ``state.json``); ``collect`` reads what the
runs left on disk; ``report`` writes ``report.md``, ``report.csv``, ``report.json`` and
``dice_boxplot.png``; ``compare`` and ``nnunet_results`` add another report's or nnU-Net v2's
numbers side by side.
"""
