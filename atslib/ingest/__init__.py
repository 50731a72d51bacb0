"""The ingest wing: importers that turn a dataset you already have on disk (miniImageNet,
Omniglot, CUB, tieredImageNet layouts, ...) into the image contract (``importers``), and a
pickle reader that never runs code (``safepickle``). Needs numpy, and pillow for JPEG/PNG files."""
