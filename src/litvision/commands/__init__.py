"""What each command asks of a run: `fit` (train, then test the best checkpoint), `test` (test a
checkpoint), `predict` (a folder of images), `export` (a checkpoint as ONNX, TorchScript or an
ExportedProgram, into a folder holding only the model and export.json). The lifecycle (`litvision.lifecycle`) composes,
validates, owns the run folder and writes the summary; each command here only does its work on a
`Session` and returns the summary fields that are its own."""
