#!/bin/sh
# STAND-IN for https://get.k3s.io, for the local lab only. It does what the real script does
# with INSTALL_K3S_SKIP_DOWNLOAD=true (the air-gapped install): the binary is already in
# /usr/local/bin/k3s; it writes the k3s.service unit, k3s-killall.sh and k3s-uninstall.sh, then
# enables and (re)starts the service, and waits for the node token as k3s's own start does.
set -eu
BIN=/usr/local/bin
[ -x "$BIN/k3s" ] || { echo "[ERROR] $BIN/k3s not found (INSTALL_K3S_SKIP_DOWNLOAD=true needs it)" >&2; exit 1; }
exec_args=${INSTALL_K3S_EXEC:-server}
mkdir -p /etc/systemd/system
cat > /etc/systemd/system/k3s.service.tmp <<UNIT
[Unit]
Description=Lightweight Kubernetes
After=network-online.target

[Service]
Type=notify
ExecStart=$BIN/k3s $exec_args
KillMode=process
Restart=always

[Install]
WantedBy=multi-user.target
UNIT
mv /etc/systemd/system/k3s.service.tmp /etc/systemd/system/k3s.service
cat > "$BIN/k3s-killall.sh" <<'KILL'
#!/bin/sh
systemctl stop k3s 2>/dev/null || true
KILL
cat > "$BIN/k3s-uninstall.sh" <<'UNINST'
#!/bin/sh
# k3s-uninstall.sh (lab stand-in): stops k3s and removes everything the install made.
set -e
/usr/local/bin/k3s-killall.sh
systemctl disable k3s 2>/dev/null || true
rm -f /etc/systemd/system/k3s.service
rm -rf /etc/rancher/k3s /var/lib/rancher/k3s /var/lib/kubelet
rm -f /usr/local/bin/k3s /usr/local/bin/k3s-killall.sh
rm -f /usr/local/bin/k3s-uninstall.sh
UNINST
chmod 755 "$BIN/k3s-killall.sh" "$BIN/k3s-uninstall.sh"
systemctl daemon-reload
systemctl enable k3s
rm -f /var/lib/rancher/k3s/server/node-token
systemctl restart k3s
i=0
while [ ! -s /var/lib/rancher/k3s/server/node-token ]; do
  i=$((i+1)); [ $i -gt 600 ] && { echo "[ERROR] k3s did not start: see /var/log/k3s.log" >&2; exit 1; }
  sleep 0.1
done
echo "[INFO]  k3s $($BIN/k3s --version | head -n1 | cut -d' ' -f3) installed (lab stand-in)"
