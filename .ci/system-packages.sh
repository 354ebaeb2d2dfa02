#!/usr/bin/env bash
# Debian packages the project needs: graphviz (`dot`, for path diagrams). Installed when missing and
# possible; otherwise a clear message (everything but path diagrams works without it).
set -u
if command -v dot >/dev/null 2>&1; then
  exit 0
fi
if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
  echo "installing graphviz (Debian package) for path diagrams"
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq graphviz >/dev/null) \
    || echo "warning: could not install graphviz with apt-get; path diagrams will be skipped"
elif command -v apt-get >/dev/null 2>&1 && command -v sudo >/dev/null 2>&1; then
  echo "installing graphviz with sudo apt-get (path diagrams need it)"
  (sudo apt-get update -qq && sudo apt-get install -y -qq graphviz >/dev/null) \
    || echo "warning: could not install graphviz; path diagrams will be skipped"
else
  echo "warning: graphviz ('dot') is missing and cannot be installed here (no apt-get or not root);"
  echo "         install it with your system's package manager for path diagrams"
fi
exit 0
