"""Planners shipped with autolung, loaded through the ``autolung.planners`` entry points.

autolung itself never imports this package directly; ``autolung.planning.registry.load_planner``
finds a planner by name, so third-party packages can add their own the same way.
"""
