#!/usr/bin/env bash
# Installs qllm's build and test dependencies from Debian's packages (Debian 12 or newer).
# Runs apt-get as root, through sudo when started by another user.
set -euo pipefail
if [ "$(id -u)" -ne 0 ]; then exec sudo "$0" "$@"; fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends \
  cmake make g++ pkg-config \
  libgtest-dev libgmock-dev libbenchmark-dev libcli11-dev libfmt-dev libspdlog-dev libxsimd-dev \
  nlohmann-json3-dev "$@" >/dev/null
