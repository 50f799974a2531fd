"""Up-front checks that a classifier and its data can learn together (called by checks.preflight).

What the issue calls a mismatch that cannot learn, each refused in one line before any run folder
exists: an input size outside what the network learns from (`ModelEntry.input_range`: the 8x8-digits
CNN fed 224 px crops ended at chance), weights made for another channel count than the data's, and
a head sized for another class count than the data has.
"""

from __future__ import annotations

from omegaconf import DictConfig, OmegaConf

from litvision.errors import UserError


def _is_int(v: object) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _weights_file_shape(path: str) -> tuple[int | None, int | None]:
    """(input channels of the first convolution, rows of the last 2-D weight: the head's classes) of a
    weights file; None where the file does not say (or cannot be read: the loader reports that)."""
    from litvision.models.weights import read_state_dict

    try:
        tensors = read_state_dict(path)
    except UserError:
        return None, None
    convs = [v for v in tensors.values() if getattr(v, "ndim", 0) == 4]
    linears = [v for k, v in tensors.items() if getattr(v, "ndim", 0) == 2 and k.endswith("weight")]
    return (int(convs[0].shape[1]) if convs else None), (int(linears[-1].shape[0]) if linears else None)


def check_model_fits_data(cfg: DictConfig) -> None:
    """A classifier and its data that cannot learn together, refused in one line before any folder:
    an input size outside what the network learns from (the 8x8-digits CNN on 224 px crops), weights
    for another channel count than the data's, or a head sized for another class count."""
    if OmegaConf.select(cfg, "model.net._target_", default=None) is None or "image_size" not in (
        cfg.get("data") or {}
    ):
        return
    from litvision.models.registry import describe_net

    net = cfg.model.net
    try:
        entry, weights = describe_net(
            {k: net.get(k) for k in ("_target_", "name", "arch", "weights", "pretrained", "pretrained_file")}
        )
    except UserError:
        return  # an unregistered network: nothing to compare against
    if entry.task != "classification":
        return
    side, channels = cfg.data.get("image_size"), cfg.data.get("in_channels")
    if entry.input_range and _is_int(side) and not entry.input_range[0] <= side <= entry.input_range[1]:
        low, high = entry.input_range
        raise UserError(
            f"data.image_size={side} does not fit model {entry.name}, which learns from {low}-{high} px "
            f"images; set data.image_size={min(max(side, low), high)} (or leave it out: the folder's own "
            "size is chosen), or pick a model for large images (e.g. model=resnet)."
        )
    wanted_classes = OmegaConf.select(cfg, "model.num_classes", default=None)
    data_classes = OmegaConf.select(cfg, "data.num_classes", default=None)
    if _is_int(wanted_classes) and _is_int(data_classes) and wanted_classes != data_classes:
        raise UserError(
            f"model.num_classes={wanted_classes} but the data ({cfg.data.get('root') or cfg.data._target_}) "
            f"has {data_classes} classes: a {wanted_classes}-class head cannot learn them; leave "
            "model.num_classes at ${data.num_classes}, and load other weights with model.net.load_mode=replace_head."
        )
    have = weights.channels if weights.source == "torchvision" else None
    if weights.source == "file":
        have = _weights_file_shape(weights.ref)[0]
    if _is_int(channels) and have is not None and have != channels:
        raise UserError(
            f"the weights {weights.ref or weights.name} read {have}-channel images but the data gives "
            f"{channels} (data.in_channels={channels}); set data.in_channels={have} (grey images are "
            "converted), or train without them (model.net.weights=null)."
        )
