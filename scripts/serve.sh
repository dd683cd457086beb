#!/usr/bin/env bash
# Runs Dhwani with the embedded default config and the demo flow (number
# 1000). Installs espeak-ng (the demo flow's speech) when it is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v espeak-ng >/dev/null 2>&1; then
  echo "installing espeak-ng (text-to-speech for the demo flow)"
  if [ "$(id -u)" -ne 0 ]; then SUDO=sudo; else SUDO=; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq espeak-ng >/dev/null
fi
exec cargo run --release -- serve "$@"
