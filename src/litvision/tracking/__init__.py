"""Experiment tracking: the W&B logger wired to the run folder, offline W&B runs read back, W&B sweeps.

    make train ARGS="logger=wandb"          # W&B only
    make train ARGS="logger=many"           # CSV + TensorBoard + W&B
    make wandb-sweep EXP=digits_cnn         # write/validate a W&B sweep file for `wandb agent`

`wandb_logger` (imported when a run starts) needs Lightning; `offline` needs only wandb's protobufs.
"""
