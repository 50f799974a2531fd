"""Image transforms: classification presets, detection presets (boxes move with the image), batch mixing."""
