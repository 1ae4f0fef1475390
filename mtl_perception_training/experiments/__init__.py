"""Experiments that train many configurations and report on them (``mtl-perception experiment``)."""
