"""Callbacks: anything hooked into the Trainer (finetuning schedules, media, resume state)."""
