#mixop-standin rke2-install
# This file stands in for RKE2's install.ps1 (https://github.com/rancher/rke2/blob/master/install.ps1)
# on the local lab's simulated Windows workers: the simulator runs it for
# `powershell.exe -File install.ps1 [-ArtifactPath DIR] [-Version V]`. Like the real script it
# refuses a host whose Containers feature is not Installed (exit 1), then installs
# C:\usr\local\bin\rke2.exe and C:\usr\local\bin\rke2-uninstall.ps1 (from -ArtifactPath, where
# the real script unpacks rke2.windows-amd64.tar.gz). It is not a PowerShell script.
