#!/usr/bin/env bash
# The browser the console's end-to-end tests drive: Debian's chromium, driven by Playwright
# with executable_path=/usr/bin/chromium (Playwright's own browser download is never used).
# Installs only when /usr/bin/chromium is missing; needs root (CI runs as root) or sudo.
set -euo pipefail
if [ -x /usr/bin/chromium ]; then
    exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
    echo "install-browser: no apt-get; install Chromium at /usr/bin/chromium yourself" >&2
    exit 1
fi
SUDO=""
if [ "$(id -u)" != "0" ]; then
    SUDO="sudo"
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core >/dev/null
/usr/bin/chromium --version
