"""Make a longer talking-head video with speech: resources/samples/face_speech.mp4
played N times in a row (video and audio re-encoded with PyAV, which emoapp already
needs). Usage: python longer_talking_head.py OUT.mp4 [N=3]"""

import sys
from pathlib import Path

import av
import numpy as np

SAMPLE = Path(__file__).resolve().parents[3] / "resources" / "samples" / "face_speech.mp4"


def main(out: str, times: int) -> None:
    with av.open(str(SAMPLE)) as src:
        video = src.streams.video[0]
        frames = [f.to_ndarray(format="rgb24") for f in src.decode(video)]
        fps = video.average_rate
        src.seek(0)
        audio = src.streams.audio[0]
        rate = audio.rate
        parts = [f.to_ndarray().astype(np.float32) for f in src.decode(audio)]
    sound = np.concatenate(
        [p.mean(axis=0) if p.ndim == 2 and p.shape[0] > 1 else p.reshape(-1) for p in parts]
    )
    with av.open(out, "w") as dst:
        ov = dst.add_stream("libx264", rate=fps)
        ov.width, ov.height, ov.pix_fmt = frames[0].shape[1], frames[0].shape[0], "yuv420p"
        oa = dst.add_stream("aac", rate=rate)
        oa.layout = "mono"
        for _ in range(times):
            for image in frames:
                dst.mux(ov.encode(av.VideoFrame.from_ndarray(image, format="rgb24")))
        dst.mux(ov.encode())
        full, pts = np.tile(sound, times), 0
        for i in range(0, full.size, 1024):
            chunk = full[i : i + 1024].reshape(1, -1)
            frame = av.AudioFrame.from_ndarray(chunk, format="flt", layout="mono")
            frame.sample_rate, frame.pts = rate, pts
            pts += chunk.shape[1]
            dst.mux(oa.encode(frame))
        dst.mux(oa.encode())
    print(f"{out}: {len(frames) * times / float(fps):.1f} s")


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 3)
