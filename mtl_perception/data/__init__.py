"""Data: Cityscapes labels, the Cityscapes-layout dataset reader, synthetic street scenes."""
