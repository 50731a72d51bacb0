"""The ingest wing: importers that turn a dataset you already have on disk (miniImageNet,
tieredImageNet, Omniglot, CIFAR-FS, FC100 layouts) into the image contract (``importers``), and a
pickle reader that never runs code (``safepickle``). Needs numpy, and pillow for JPEG/PNG files."""
