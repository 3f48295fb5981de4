#mixop-standin rke2-uninstall
# This file stands in for RKE2's rke2-uninstall.ps1 on the local lab's simulated Windows workers:
# the simulator runs it for `powershell.exe -File C:\usr\local\bin\rke2-uninstall.ps1`. It stops
# and deletes the rke2 service and removes C:\usr\local\bin\rke2.exe, C:\var\lib\rancher\rke2,
# C:\etc\rancher\rke2 and itself. It is not a PowerShell script.
