"""Frame sources: Picamera2, any OpenCV capture, or a folder of still images; and the capture thread
that keeps only the newest frame and reopens a failed source with backoff."""
