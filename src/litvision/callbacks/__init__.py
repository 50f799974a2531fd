"""Callbacks hooked into the Trainer (pre-emption, performance switches, finetuning schedules, ...)."""
