#!/bin/bash
# The run shown in docs/guide/stream.md: a stream with a token from a file, the example
# client connected, then a web page's handshake and twelve guessed tokens; prints what
# emoapp said, what curl got, the client's first lines and the audit log.
# Run from the repository root: bash docs/examples/stream_demo.sh  (PYTHON=... to choose)
set -u
PY=${PYTHON:-python}
WORK=$(mktemp -d)
export EMOAPP_CONFIG_DIR=$WORK/config   # a fresh audit log, not yours
umask 077
printf 'my-dashboard-token-7f3a9c\n' > "$WORK/token"
$PY -m emoapp live --no-gui --mic resources/samples/speech.wav --profile baseline \
  --stream 8765 --stream-token-file "$WORK/token" --row-rate 2 --status-every 0 \
  --asr off > /dev/null 2> "$WORK/live.err" &
LIVE=$!
# wait for the port (this probe sends no token: it is the first refusal counted)
for _ in $(seq 100); do curl -s -o /dev/null http://127.0.0.1:8765/ && break; sleep 0.2; done
$PY docs/examples/stream_client.py ws://127.0.0.1:8765 my-dashboard-token-7f3a9c \
  > "$WORK/client.out" 2>&1 &
sleep 1
WS_HEADERS="-H Connection:Upgrade -H Upgrade:websocket -H Sec-WebSocket-Version:13 -H Sec-WebSocket-Key:dGhlIHNhbXBsZSBub25jZQ=="
# shellcheck disable=SC2086
curl -si $WS_HEADERS -H "Authorization: Bearer my-dashboard-token-7f3a9c" \
  -H "Origin: http://evil.example" http://127.0.0.1:8765/ | head -1
for i in $(seq 12); do
  # shellcheck disable=SC2086
  curl -s -o /dev/null -w "%{http_code} " $WS_HEADERS "http://127.0.0.1:8765/?token=guess$i-0000000000"
done
echo
wait
cat "$WORK/live.err"
head -5 "$WORK/client.out"
cat "$EMOAPP_CONFIG_DIR/audit.jsonl"
rm -rf "$WORK"
