#!/usr/bin/env bash
# One entry point for a fresh Debian 12 machine (root, or a user with sudo):
#   ./setup.sh demo   install, then run the demo (emulated VPP + private snmpd + the agent)
#   ./setup.sh test   install, then run the whole test suite
# It installs Debian's net-snmp (snmpd, snmp; for `test` also smitools and
# prometheus-snmp-exporter, and tmux for the `top` test), creates .venv and installs agentx-lb into it. Nothing is started system-wide.
set -euo pipefail
cd "$(dirname "$0")"

mode=${1:-}
case "$mode" in
  demo|test|install) ;;
  *) echo "usage: ./setup.sh demo|test|install" >&2; exit 2 ;;
esac

# The agent needs only net-snmp; the tests also check the MIB and the NMS tools.
apt_packages=(snmpd snmp)
[ "$mode" = test ] && apt_packages+=(smitools prometheus-snmp-exporter tmux)
py=${PYTHON:-python3}

as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

missing=()
for p in "${apt_packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# Debian's python3 needs python3-venv for `python3 -m venv`.
if ! "$py" -c 'import ensurepip, venv' 2>/dev/null; then missing+=(python3-venv); fi
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing Debian packages: ${missing[*]}"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# Debian's snmpd package starts a system snmpd; the project never needs it.

if [ ! -x .venv/bin/python ]; then
  "$py" -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip >/dev/null
if [ "$mode" = test ]; then
  .venv/bin/python -m pip install -q -e '.[test]'
else
  .venv/bin/python -m pip install -q -e .
fi

case "$mode" in
  demo) exec .venv/bin/agentx-lb demo "${@:2}" ;;
  test) exec .venv/bin/python -m pytest "${@:2}" ;;
  install) echo "setup: installed into .venv (run .venv/bin/agentx-lb --help)" ;;
esac
