"""sanet-serve beside the authors' ONNX export on LitServe, end to end."""
