#!/usr/bin/env bash
# Set up everything emoapp needs on a fresh Debian/Ubuntu machine, idempotently:
# system libraries (when run as root with apt-get), a virtual environment in .venv, and
# emoapp installed into it in editable mode. Usage: scripts/bootstrap.sh [app|test]
set -euo pipefail
cd "$(dirname "$0")/.."
what="${1:-app}"

# Debian packages: PortAudio for sounddevice, the libraries Qt's xcb/offscreen platforms
# load, and (for tests and sample media) espeak-ng, sox, Xvfb and Chromium (the batch
# index page is rendered headless in a test).
apt_packages=(libportaudio2 libegl1 libgl1 libxkbcommon0 libxkbcommon-x11-0 libfontconfig1
  libdbus-1-3 libxcb-cursor0 libxcb-icccm4 libxcb-keysyms1 libxcb-image0 libxcb-render-util0
  libxcb-shape0 libxcb-xinerama0 libxcb-randr0 libxcb-xkb1 libglib2.0-0)
if [ "$what" = test ]; then
  apt_packages+=(espeak-ng sox xvfb chromium)
fi
missing=()
if command -v dpkg-query >/dev/null; then
  for p in "${apt_packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
fi
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "bootstrap: installing Debian packages: ${missing[*]}" >&2
    # Another apt or dpkg (unattended upgrades, a CI image still settling) may hold the
    # locks: wait for them (up to EMOAPP_APT_LOCK_TIMEOUT seconds) rather than fail.
    # DPkg::Lock::Timeout makes apt wait for dpkg's locks; the package lists' lock that
    # `update` takes is waited for here, by retrying while apt says it is held.
    lock_timeout="${EMOAPP_APT_LOCK_TIMEOUT:-600}"
    lock_wait=(-o "DPkg::Lock::Timeout=$lock_timeout")
    waited=0
    until err="$(apt-get "${lock_wait[@]}" update -qq 2>&1 >/dev/null)"; do
      if ! grep -q "Could not get lock" <<<"$err" || [ "$waited" -ge "$lock_timeout" ]; then
        echo "$err" >&2
        exit 1
      fi
      [ "$waited" = 0 ] && echo "bootstrap: waiting for another apt to release its lock" >&2
      sleep 5
      waited=$((waited + 5))
    done
    DEBIAN_FRONTEND=noninteractive apt-get "${lock_wait[@]}" install -y -qq \
      --no-install-recommends "${missing[@]}" >/dev/null
  else
    echo "bootstrap: please install these system packages: ${missing[*]}" >&2
  fi
fi

python="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  "$python" -m venv .venv
fi
stamp=".venv/.emoapp-$what"
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ] || [ .ci/constraints.txt -nt "$stamp" ]; then
  .venv/bin/python -m pip install -q --upgrade pip
  # The constraints pin torch to a known-good release (PyPI gives the build that suits
  # the platform); override with EMOAPP_CONSTRAINTS=/dev/null.
  extras=""
  [ "$what" = test ] && extras="[dev]"
  .venv/bin/python -m pip install -q -c "${EMOAPP_CONSTRAINTS:-.ci/constraints.txt}" -e ".$extras"
  touch "$stamp"
fi
