"""Metrics named as in the paper's Table 1, Cityscapes AP/PQ, official results writer."""
