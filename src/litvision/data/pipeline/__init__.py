"""What every dataset goes through: decoding, splits, samplers, leakage checks, downloads, the device cache."""
