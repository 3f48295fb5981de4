#!/bin/sh
# STAND-IN for https://get.rke2.io, for the local lab only. It does what the real script does for
# an air-gapped install (INSTALL_RKE2_ARTIFACT_PATH=<folder>): installs the rke2 binary from that
# folder (the real one unpacks rke2.linux-amd64.tar.gz there), the rke2-server unit (here in
# /etc/systemd/system; the real tarball puts it in /usr/local/lib/systemd/system),
# rke2-killall.sh and rke2-uninstall.sh, and the kubectl under /var/lib/rancher/rke2/bin. It
# does not start the service: as with the real script, `systemctl enable --now rke2-server` does.
set -eu
art=${INSTALL_RKE2_ARTIFACT_PATH:?the lab stand-in supports only INSTALL_RKE2_ARTIFACT_PATH installs}
type=${INSTALL_RKE2_TYPE:-server}
[ "$type" = server ] || { echo "[ERROR] the lab stand-in installs servers only" >&2; exit 1; }
BIN=/usr/local/bin
install -m 0755 "$art/rke2" "$BIN/rke2.tmp" && mv "$BIN/rke2.tmp" "$BIN/rke2"
mkdir -p /etc/systemd/system /var/lib/rancher/rke2/bin
cat > /etc/systemd/system/rke2-server.service.tmp <<UNIT
[Unit]
Description=Rancher Kubernetes Engine v2 (server)
After=network-online.target

[Service]
Type=notify
ExecStart=$BIN/rke2 server
KillMode=process
Restart=always

[Install]
WantedBy=multi-user.target
UNIT
mv /etc/systemd/system/rke2-server.service.tmp /etc/systemd/system/rke2-server.service
cat > /var/lib/rancher/rke2/bin/kubectl <<'KUBECTL'
#!/bin/sh
exec /usr/local/bin/rke2 kubectl "$@"
KUBECTL
chmod 755 /var/lib/rancher/rke2/bin/kubectl
cat > "$BIN/rke2-killall.sh" <<'KILL'
#!/bin/sh
systemctl stop rke2-server 2>/dev/null || true
KILL
cat > "$BIN/rke2-uninstall.sh" <<'UNINST'
#!/bin/sh
# rke2-uninstall.sh (lab stand-in): stops RKE2 and removes everything the install made.
set -e
/usr/local/bin/rke2-killall.sh
systemctl disable rke2-server 2>/dev/null || true
rm -f /etc/systemd/system/rke2-server.service
rm -rf /etc/rancher/rke2 /var/lib/rancher/rke2 /var/lib/kubelet
rm -f /usr/local/bin/rke2 /usr/local/bin/rke2-killall.sh /usr/local/bin/rke2-uninstall.sh
UNINST
chmod 755 "$BIN/rke2-killall.sh" "$BIN/rke2-uninstall.sh"
systemctl daemon-reload
echo "[INFO]  rke2 $($BIN/rke2 --version | head -n1 | cut -d' ' -f3) installed (lab stand-in); enable and start rke2-server"
