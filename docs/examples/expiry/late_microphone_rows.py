"""Which rows of an `emoapp live --out` timeline carry microphone data after a time:
a voice prediction, or a text prediction of words heard by the speech recogniser
(origin "voice"). Usage: python late_microphone_rows.py ROWS.jsonl SECONDS"""

import json
import sys
from pathlib import Path


def main(path: str, after: float) -> None:
    lines = Path(path).read_text(encoding="utf-8").splitlines()
    rows = [json.loads(line) for line in lines if line.strip()]
    rows = [row for row in rows if "modalities" in row]  # the header record is not a row

    def heard(row: dict) -> bool:
        text = row["modalities"]["text"]
        return text is not None and text.get("origin") == "voice"

    voice = [row["t"] for row in rows if row["modalities"]["voice"]]
    texts = [row["t"] for row in rows if heard(row)]
    late = [
        row["t"] for row in rows if row["t"] > after and (row["modalities"]["voice"] or heard(row))
    ]

    def span(ts: list[float]) -> str:
        return f"t {min(ts):.1f}..{max(ts):.1f} s" if ts else "none"

    print(
        f"{path}: {len(rows)} rows (last t {rows[-1]['t']:.1f} s); voice: {len(voice)} rows "
        f"({span(voice)}); text from heard words: {len(texts)} rows ({span(texts)}); "
        f"rows after {after:g} s carrying either: {len(late)}"
    )


if __name__ == "__main__":
    main(sys.argv[1], float(sys.argv[2]))
