"""Flavors: how a kind of model is saved into a bundle and loaded back (entry-point group
``evalkit.model_flavors``)."""
