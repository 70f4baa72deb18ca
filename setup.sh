#!/usr/bin/env bash
# One entry point for a fresh Debian 12 machine (root, or a user with sudo):
#   ./setup.sh demo   install, then run the demo (emulated VPP + private snmpd + the agent)
#   ./setup.sh test   install, then run the whole test suite
#   ./setup.sh test-realvpp PREFIX [pytest args]
#                     install, then run the real-VPP tier against the VPP
#                     installed under PREFIX (bin/vpp with the lb plugin; root)
#   ./setup.sh deb    build dist/agentx-lb_<version>_all.deb with Debian's tools, then lintian
#   ./setup.sh check  install the test extra (pinned ruff, mypy), then scripts/check:
#                     ruff lint, ruff format --check, mypy (strict on the package,
#                     relaxed on tests and bench; CI runs it before the tests)
# It installs Debian's net-snmp (snmpd, snmp; for `test` also smitools, snmptrapd
# (the notification tests' receiver) and prometheus-snmp-exporter, and tmux for the `top` test), creates .venv and installs agentx-lb into it. Nothing is started system-wide.
# `deb` installs the build tools instead (debhelper, dh-virtualenv, lintian) and needs no .venv.
set -euo pipefail
cd "$(dirname "$0")"

mode=${1:-}
case "$mode" in
  demo|test|install|deb|check) ;;
  test-realvpp)
    [ $# -ge 2 ] || { echo "usage: ./setup.sh test-realvpp VPP_PREFIX [pytest args]" >&2; exit 2; }
    ;;
  *) echo "usage: ./setup.sh demo|test|test-realvpp PREFIX|install|deb|check" >&2; exit 2 ;;
esac

# The agent needs only net-snmp; the tests also check the MIB and the NMS tools.
apt_packages=(snmpd snmp)
case "$mode" in test|test-realvpp) apt_packages+=(smitools snmptrapd prometheus-snmp-exporter tmux) ;; esac
# The package is built by Debian's tools with Debian's python3 (not $PYTHON).
[ "$mode" = deb ] && apt_packages=(build-essential debhelper dh-virtualenv python3-venv lintian)
# The check reads the source only: no net-snmp.
[ "$mode" = check ] && apt_packages=()
py=${PYTHON:-python3}
[ "$mode" = deb ] && py=/usr/bin/python3

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

# dpkg-buildpackage in a copy of the tree (the checkout keeps no build files),
# the .deb moved to dist/, then lintian (errors fail the build).
build_deb() {
  local version changelog src deb
  version=$(sed -n 's/^__version__ = "\(.*\)"$/\1/p' agentx_lb/__init__.py)
  changelog=$(dpkg-parsechangelog -S Version)
  if [ "$version" != "$changelog" ]; then
    echo "setup: debian/changelog is at $changelog, agentx_lb/__init__.py at $version:" \
      "add a changelog entry" >&2
    exit 1
  fi
  work=$(mktemp -d /tmp/agentx-lb-deb.XXXXXX)
  trap 'rm -rf "$work"' EXIT
  src="$work/agentx-lb-$version"
  mkdir "$src"
  if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
    # What git sees: tracked and new files, nothing ignored (.venv, dist, caches).
    git ls-files -z --cached --others --exclude-standard \
      | tar --null --ignore-failed-read -T - -cf - 2>/dev/null | tar -C "$src" -xf -
  else
    tar --exclude=./.git --exclude=./.venv --exclude=./dist -cf - . | tar -C "$src" -xf -
  fi
  echo "setup: building the package (dpkg-buildpackage, log in $work/build.log)"
  if ! (cd "$src" && nice dpkg-buildpackage -us -uc -b) >"$work/build.log" 2>&1; then
    tail -n 60 "$work/build.log" >&2
    echo "setup: dpkg-buildpackage failed" >&2
    exit 1
  fi
  mkdir -p dist
  rm -f dist/agentx-lb_*.deb
  mv "$work"/agentx-lb_"$version"_*.deb dist/
  deb=$(ls dist/agentx-lb_"$version"_*.deb)
  echo "setup: built $deb ($(du -k "$deb" | cut -f1) KiB)"
  echo "setup: lintian $deb"
  nice lintian --fail-on error "$deb"
}

if [ "$mode" = deb ]; then
  build_deb
  exit 0
fi

if [ ! -x .venv/bin/python ]; then
  "$py" -m venv .venv
fi
if [ "$mode" = check ]; then
  # Install only when pyproject.toml changed since the last check's install:
  # the check must stay fast when nothing changed (a pre-stop hook runs it).
  stamp=.venv/.check-installed
  if [ ! -f "$stamp" ] || ! cmp -s pyproject.toml "$stamp"; then
    .venv/bin/python -m pip install -q --upgrade pip >/dev/null
    .venv/bin/python -m pip install -q -e '.[test]'
    cp pyproject.toml "$stamp"
  fi
else
  .venv/bin/python -m pip install -q --upgrade pip >/dev/null
  if [ "$mode" = test ] || [ "$mode" = test-realvpp ]; then
    .venv/bin/python -m pip install -q -e '.[test]'
  else
    .venv/bin/python -m pip install -q -e .
  fi
fi

case "$mode" in
  demo) exec .venv/bin/agentx-lb demo "${@:2}" ;;
  test) exec .venv/bin/python -m pytest "${@:2}" ;;
  test-realvpp)
    AXLB_REALVPP_PREFIX=$(realpath "$2") exec .venv/bin/python -m pytest -m realvpp -s tests/realvpp "${@:3}" ;;
  check) exec scripts/check ;;
  install) echo "setup: installed into .venv (run .venv/bin/agentx-lb --help)" ;;
esac
