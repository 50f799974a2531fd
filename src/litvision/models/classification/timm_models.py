"""timm models by name: ViT, Swin, ConvNeXt ... from scratch at any resolution, or pretrained.

    timm_model("vit_small_patch16_224", num_classes=10, img_size=32, patch_size=4, depth=7)
    timm_model("swin_tiny_patch4_window7_224.ms_in1k", num_classes=5, pretrained=True)
    timm_model("vit_small_patch16_224.augreg_in21k_ft_in1k", num_classes=5,
               pretrained_file="/data/weights/vit_small.safetensors")   # offline

Pretrained tags go through timm's own loader, which downloads from the Hugging Face hub and adapts
the head, the input channels and the position embeddings; a `pretrained_file` is read by
litvision's one loader (`litvision.models.weights.read_state_dict`) and adapted by timm the same way.
"""

from __future__ import annotations

from typing import Any

from torch import nn

from litvision.errors import UserError
from litvision.models.registry import register_model


def _is_timm_model(name: str) -> bool:
    import timm

    return timm.is_model(name.split(".", 1)[0])


@register_model(
    "timm/<name>",
    task="classification",
    family="timm",
    accepts=_is_timm_model,
    description="any timm model (timm.list_models()); weights: pretrained=true or a tag, or pretrained_file",
    arch_key="name",
    weights_key="pretrained",
    weights_source="timm",
    default_weights="DEFAULT",
)
def timm_model(
    name: str,
    num_classes: int,
    pretrained: bool = False,
    pretrained_file: str | None = None,
    in_channels: int = 3,
    **kwargs: Any,
) -> nn.Module:
    """`timm.create_model(name, ...)` with clear errors for unknown names and failed downloads."""
    import timm

    arch = name.split(".", 1)[0]
    if not timm.is_model(arch):
        close = timm.list_models(f"*{arch.split('_')[0]}*")[:12]
        raise UserError(f"model.net.name={name!r} is not a timm model; similar: {', '.join(close)}.")
    if pretrained_file:
        from timm.models._helpers import clean_state_dict

        from litvision.models.weights import read_state_dict

        # The file is read by litvision's one loader (a pickled payload is refused in one line); timm
        # then adapts it from memory (new head, input channels, position embeddings).
        state = clean_state_dict(read_state_dict(pretrained_file, "model.net.pretrained_file"))
        kwargs["pretrained_cfg_overlay"] = {**kwargs.get("pretrained_cfg_overlay", {}), "state_dict": state}
        pretrained = True
    try:
        return timm.create_model(
            name, pretrained=pretrained, num_classes=num_classes, in_chans=in_channels, **kwargs
        )
    except Exception as e:
        if not pretrained or pretrained_file:
            raise
        hf = _hf_repo(name)
        raise UserError(
            f"Could not download timm weights for {name!r} ({type(e).__name__}). Without network, "
            f"download model.safetensors from https://huggingface.co/{hf} elsewhere and pass it: "
            "model.net.pretrained_file=/path/to/model.safetensors (or copy a filled Hugging Face cache "
            "to ~/.cache/huggingface/hub), or train from scratch: model.net.pretrained=false."
        ) from None


def _hf_repo(name: str) -> str:
    try:
        import timm

        cfg = timm.models.get_pretrained_cfg(name)
        if cfg is not None and cfg.hf_hub_id:
            return cfg.hf_hub_id
    except Exception:  # noqa: BLE001 - only used to word an error message
        pass
    return f"timm/{name}"
