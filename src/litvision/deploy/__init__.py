"""Shipping a trained model: export to ONNX / TorchScript / ExportedProgram with a parity check."""
