#!/usr/bin/env bash
# Installs everything mixop's build, lab and test suite need on a fresh Debian machine.
# Idempotent: re-running only installs what is missing.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

# dpkg-dev: dpkg-deb/dpkg-scanpackages for the apt tests' local repository; python3-apt: what
# ansible-playbook's apt module needs on the (lab) target for the apt differential test.
# dnf rpm createrepo-c: the dnf/yum tests' rpm repository and installroot (rpm has rpmbuild);
# python3-dnf: what ansible-playbook's dnf module needs on the target (dnf differential test);
# ufw: the ufw module's tests run it inside a lab host's network namespace.
# pacman-package-manager libarchive-tools zstd: the pacman module's tests (real pacman in a lab
# host's private root; bsdtar + zstd build the test packages and repository database).
apt_pkgs=(openssh-server openssh-client iproute2 nftables sudo hyperfine procps psmisc time util-linux python3-venv sshpass python3-cryptography python3-yaml dpkg-dev python3-apt dnf rpm createrepo-c python3-dnf ufw pacman-package-manager libarchive-tools zstd)
missing=()
for p in "${apt_pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing apt packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  # The lab starts its own sshd per namespace; the distribution's service is not wanted.
  (systemctl disable --now ssh 2>/dev/null || service ssh stop 2>/dev/null || true) >/dev/null 2>&1
fi

venv="$root/.venv"
stamp="$venv/.requirements.sha"
want=$(sha256sum tests/requirements.txt | cut -d' ' -f1)
if [ ! -x "$venv/bin/python" ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "setup: creating Python virtualenv in .venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q --upgrade pip >/dev/null
  "$venv/bin/pip" install -q -r tests/requirements.txt
  echo "$want" > "$stamp"
fi
echo "setup: ok"
