"""Print each estimate emoapp streams.  python stream_client.py ws://127.0.0.1:8765 TOKEN"""

import json
import sys

from websockets.sync.client import connect

url, token = sys.argv[1], sys.argv[2]
headers = {"Authorization": f"Bearer {token}"}  # or connect to f"{url}/?token={token}"
with connect(url, additional_headers=headers, subprotocols=["emoapp.timeline.v1"]) as ws:
    for message in ws:  # one timeline row per message, until emoapp stops
        row = json.loads(message)
        fused = row["fused"]
        if fused is None:
            print(f"{row['t']:6.1f} s  no estimate ({row['abstained']})", flush=True)
            continue
        top = sorted(fused["probs"].items(), key=lambda item: -item[1])[:2]
        shown = ", ".join(f"{label} {p:.0%}" for label, p in top)
        print(f"{row['t']:6.1f} s  valence {fused['valence']:.2f}  {shown}", flush=True)
