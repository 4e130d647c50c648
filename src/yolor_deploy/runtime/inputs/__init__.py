"""What goes into a model: images and videos read, checked and decoded, then letterboxed.

- `sources.py`: sources (image files, folders, globs, video files) resolved and read as 8-bit BGR frames;
  `decode_image` for bytes (the HTTP service decodes with it too);
- `image_header.py`: image dimensions from the file header, refused above the pixel cap before decoding;
- `opencv.py`: OpenCV loaded with its own pixel cap set from ours, the environment put back;
- `letterbox.py`: the letterbox resize upstream YOLOR inference does;
- `prefetch.py`: an iterator run a few items ahead in a thread (decoding overlaps inference).

Holds no code itself: import from the modules.
"""
