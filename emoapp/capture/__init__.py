"""Sources of timestamped input: recorded media and transcripts, camera, microphone, text."""
