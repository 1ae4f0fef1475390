"""Synthetic street scenes in the Cityscapes layout: the project's built-in dataset.

Procedurally laid-out streets (road, pavements, buildings, greenery, furniture, traffic and
people) are rasterised with a z-buffer into an image and pixel-exact labelIds, instanceIds and
disparity (from the rendered depth), plus a Cityscapes camera file. Modules, in data-flow order:
``scene`` (random layout, built from ``surfaces``, ``vehicles``, ``people``, ``furniture``) ->
``raster`` (z-buffer, ``camera`` rays) -> ``render`` (shading, ``atmosphere``, ``stereo``) ->
``writer`` (files); ``generate`` runs it all for datasets and sequences.
"""
from mtl_perception.data.synth.generate import generate_dataset, generate_sequence, render_image, render_sequence

__all__ = ["generate_dataset", "generate_sequence", "render_image", "render_sequence"]
