#!/usr/bin/env bash
# Installs the Debian packages the tests use, only when something is missing.
# Each entry is "command-to-look-for:debian-package".
set -euo pipefail

needed=(
  "mosquitto:mosquitto"
  "chromium:chromium"  # the browser tests drive it through Playwright (executable_path)
  "rabbitmq-server:rabbitmq-server"  # tests/fixtures/rabbitmq.py: a three-member cluster
)

missing=()
for entry in "${needed[@]}"; do
  cmd=${entry%%:*}
  pkg=${entry#*:}
  if ! command -v "$cmd" >/dev/null 2>&1 && [ ! -x "/usr/sbin/$cmd" ]; then
    missing+=("$pkg")
  fi
done
[ ${#missing[@]} -eq 0 ] && exit 0

echo "Installing Debian packages for the tests: ${missing[*]}"
sudo=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then
    sudo="sudo"
  else
    echo "error: need root (or sudo) to install: ${missing[*]}" >&2
    exit 1
  fi
fi
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
# The Debian packages enable system-wide brokers; tests start their own on free ports.
if [ -d /run/systemd/system ]; then
  $sudo systemctl disable --now mosquitto >/dev/null 2>&1 || true
  $sudo systemctl disable --now rabbitmq-server >/dev/null 2>&1 || true
else
  # No systemd (a container): the postinst may have started RabbitMQ through its init
  # script. Stop it, keep it from starting at boot, and end the epmd it left behind.
  for pkg in mosquitto rabbitmq-server; do
    if [ -x "/etc/init.d/$pkg" ]; then
      $sudo "/etc/init.d/$pkg" stop >/dev/null 2>&1 || true
      $sudo update-rc.d "$pkg" disable >/dev/null 2>&1 || true
    fi
  done
  if command -v epmd >/dev/null 2>&1; then
    $sudo epmd -kill >/dev/null 2>&1 || true
  fi
fi
