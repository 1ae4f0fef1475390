"""The multi-task network: dilated ResNet backbone, DeepLabV3 ASPP, one decoder per task."""
