"""Image loading and model inference shared by the trainer and the daemon.

`vision.images` decodes files into the uint8 RGB arrays that every model is trained and run on,
and `vision.inference` loads `.keras` models and turns a batch of those arrays into
predictions. This package imports nothing else of sortbox, and only `vision.inference` imports
TensorFlow, inside its functions.
"""
