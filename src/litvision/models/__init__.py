"""Plain nn.Modules and model factories; no training logic lives here."""
