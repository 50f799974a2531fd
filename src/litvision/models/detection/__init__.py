"""Detection models with one interface for the detection task.

`model(images, targets)` in train mode returns a dict of named, already-weighted losses
(their sum is the training loss); in eval mode `model(images)` returns one dict per image with
`boxes` (XYXY, pixels of the input image), `scores` and `labels` (contiguous 0..C-1).
Images are float [3,H,W] in [0,1], not normalised: each model normalises and resizes itself.
"""
