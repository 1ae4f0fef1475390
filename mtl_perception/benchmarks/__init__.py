"""Speed measurements of every layer, kept above the layers they measure (``mtl-perception bench``)."""
