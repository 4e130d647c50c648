"""Live video: cameras and network streams into the runtime's Detector (no torch).

- `sources.py`: what a source is (rtsp/rtmp/http(s) URLs, webcam index, file, `.txt`/`.streams` lists);
- `reader.py`: one capture thread per stream (latest frame or no-drop queue, reconnect with backoff);
- `frames.py`: a captured frame, per-stream counters;
- `runner.py`: the loop (frames of all streams in one detector call), `stream()` the front door;
- `track.py`, `kalman.py`: ByteTrack on our own IoU and Kalman filter;
- `outputs.py`: JSON Lines, segmented annotated video, saved frames.
"""
