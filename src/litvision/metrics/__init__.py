"""Metrics that torchmetrics does not wrap the way litvision needs (detection: COCO mAP set-up, results JSON)."""
