#!/usr/bin/env bash
# Runs as the first process of a lab host, already inside its network namespace and a fresh
# private mount + UTS namespace (see up.sh). Builds the host's private filesystem view, then
# becomes the host's "anchor" (a sleep that keeps the namespaces alive while sshd is stopped
# and started; ctl.sh exec enters them through its pid).
#   hostinit.sh HOSTDIR HOSTNAME NETINDEX
set -eu
hdir=$1 name=$2 x=$3
stage=/run/mixop-lab/stage

hostname "$name"
# Make the host dir reachable at a fixed path that none of the mounts below covers: the
# state dir may itself live under /tmp, /opt or /root (pytest's tmp_path does).
mount --bind "$hdir" "$stage"
# Copy-on-write views of /etc and /var: the host sees the controller's files, but whatever it
# writes or deletes there (/etc/rancher, /etc/systemd/system, /var/lib/rancher, /var/log...)
# lands in its own upper dir. Its users, sudoers, sshd config and host keys were pre-seeded
# in the upper dir by up.sh.
mount -t overlay "lab-$name-etc" -o "lowerdir=/etc,upperdir=$stage/etc,workdir=$stage/.work/etc" /etc
mount -t overlay "lab-$name-var" -o "lowerdir=/var,upperdir=$stage/var,workdir=$stage/.work/var" /var
# Private, initially empty directories.
mount --bind "$stage/opt" /opt
mount --bind "$stage/usr-local-bin" /usr/local/bin
mount --bind "$stage/home" /home
mount --bind "$stage/root" /root
mount --bind "$stage/tmp" /tmp
# Drop this namespace's copies of the lab's netns mounts (/run/netns/*): they would keep
# other hosts' (and other labs') network namespaces alive after those are deleted.
umount -l /run/netns 2>/dev/null || true
# /run last: it hides $stage. The host gets its own /run (sshd.pid, /run/sshd, sudo stamps).
mount --bind "$stage/run" /run
echo $$ > /run/anchor.pid
: > /run/.mixop-ready
exec -a "mixop-lab-anchor net=$x host=$name" sleep infinity
