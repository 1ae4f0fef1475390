"""Post-processing of network outputs: instance grouping, depth conversion, colour maps."""
