"""Callbacks hooked into the Trainer: fine-tuning schedules, media logging."""
