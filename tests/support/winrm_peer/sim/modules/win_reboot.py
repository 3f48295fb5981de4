"""win_reboot: phase run, the readiness test after a reboot (src/modules/windows/win_reboot.ps1).

run -> {"ready": bool, "boot_time": "<FILETIME>"}

The real script tests for HKLM:\\SOFTWARE\\Microsoft\\Windows NT\\CurrentVersion\\Winlogon\\AutoLogonChecked,
a volatile key LogonUI creates when it is about to show the logon prompt (ansible.windows' reboot
plugin removes it before rebooting and waits for it). The simulated host boots instantly, so the
logon screen is up as soon as the host answers, unless host.json says otherwise with
``"logon_ui_ready": false`` (a host whose boot has not settled). The boot time is
Win32_OperatingSystem.LastBootUpTime as a FILETIME, the value the peer's built-in
``LastBootUpTime.ToFileTime()`` answer gives.
"""

from ..host import filetime


def run(ctx):
    osi = ctx.ps.get_cim_instance("Win32_OperatingSystem")
    return {"ready": bool(ctx.host.data.get("logon_ui_ready", True)),
            "boot_time": str(filetime(osi["LastBootUpTimeUnix"]))}
