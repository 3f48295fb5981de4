"""What a fresh Windows Server 2022 Datacenter (build 20348, Desktop Experience) host has.

Sources (Microsoft documentation unless noted):
* Server Manager features: `Get-WindowsFeature` / `Install-WindowsFeature` / `Uninstall-WindowsFeature`
  https://learn.microsoft.com/powershell/module/servermanager/get-windowsfeature
  https://learn.microsoft.com/powershell/module/servermanager/install-windowsfeature
  Names, display names and the role / role service / feature tree follow `Get-WindowsFeature` on 2022;
  the catalog is a subset (the roles and features a lab cluster touches plus the default ones). The
  numeric `Id`s are this simulator's own (stable, but not Windows' values).
* Features that need a restart: Containers ("Install-WindowsFeature -Name Containers ... Restart-Computer",
  https://learn.microsoft.com/virtualization/windowscontainers/quick-start/set-up-environment) and
  Hyper-V (https://learn.microsoft.com/windows-server/virtualization/hyper-v/get-started/install-the-hyper-v-role-on-windows-server:
  "The server restarts to complete the installation"). Microsoft Defender Antivirus removal also
  restarts (https://learn.microsoft.com/defender-endpoint/microsoft-defender-antivirus-on-windows-server).
* NET-Framework-Core is "Removed" (payload not on disk; installing it needs -Source ...\\sources\\sxs):
  https://learn.microsoft.com/windows-hardware/manufacture/desktop/deploy-net-framework-35-by-using-deployment-image-servicing-and-management--dism
* Optional features (DISM): https://learn.microsoft.com/powershell/module/dism/get-windowsoptionalfeature ;
  the server roles and features are the same packages seen through DISM names (Microsoft-Hyper-V,
  Containers, NetFx3 ...), so those entries are linked to the feature above.
* Machine environment of a fresh install: the registry defaults under
  HKLM\\SYSTEM\\CurrentControlSet\\Control\\Session Manager\\Environment (expanded, as
  `[Environment]::GetEnvironmentVariable(name, 'Machine')` returns them).
"""

from __future__ import annotations

# name, display name, type, parent, needs restart, default install state
ROLE, RS, FEAT = "Role", "Role Service", "Feature"
_FEATURES = [
    ("AD-Certificate", "Active Directory Certificate Services", ROLE, None, False, "Available"),
    ("ADCS-Cert-Authority", "Certification Authority", RS, "AD-Certificate", False, "Available"),
    ("AD-Domain-Services", "Active Directory Domain Services", ROLE, None, False, "Available"),
    ("DHCP", "DHCP Server", ROLE, None, False, "Available"),
    ("DNS", "DNS Server", ROLE, None, False, "Available"),
    ("FileAndStorage-Services", "File and Storage Services", ROLE, None, False, "Installed"),
    ("File-Services", "File and iSCSI Services", RS, "FileAndStorage-Services", False, "Available"),
    ("FS-FileServer", "File Server", RS, "File-Services", False, "Available"),
    ("FS-Data-Deduplication", "Data Deduplication", RS, "File-Services", False, "Available"),
    ("FS-DFS-Namespace", "DFS Namespaces", RS, "File-Services", False, "Available"),
    ("FS-NFS-Service", "Server for NFS", RS, "File-Services", False, "Available"),
    ("Storage-Services", "Storage Services", RS, "FileAndStorage-Services", False, "Installed"),
    ("Hyper-V", "Hyper-V", ROLE, None, True, "Available"),
    ("RemoteAccess", "Remote Access", ROLE, None, False, "Available"),
    ("Routing", "Routing", RS, "RemoteAccess", False, "Available"),
    ("Web-Server", "Web Server (IIS)", ROLE, None, False, "Available"),
    ("Web-WebServer", "Web Server", RS, "Web-Server", False, "Available"),
    ("Web-Common-Http", "Common HTTP Features", RS, "Web-WebServer", False, "Available"),
    ("Web-Default-Doc", "Default Document", RS, "Web-Common-Http", False, "Available"),
    ("Web-Dir-Browsing", "Directory Browsing", RS, "Web-Common-Http", False, "Available"),
    ("Web-Http-Errors", "HTTP Errors", RS, "Web-Common-Http", False, "Available"),
    ("Web-Static-Content", "Static Content", RS, "Web-Common-Http", False, "Available"),
    ("Web-Health", "Health and Diagnostics", RS, "Web-WebServer", False, "Available"),
    ("Web-Http-Logging", "HTTP Logging", RS, "Web-Health", False, "Available"),
    ("Web-Security", "Security", RS, "Web-WebServer", False, "Available"),
    ("Web-Filtering", "Request Filtering", RS, "Web-Security", False, "Available"),
    ("Web-Mgmt-Tools", "Management Tools", RS, "Web-Server", False, "Available"),
    ("Web-Mgmt-Console", "IIS Management Console", RS, "Web-Mgmt-Tools", False, "Available"),
    ("NET-Framework-Features", ".NET Framework 3.5 Features", FEAT, None, False, "Available"),
    ("NET-Framework-Core", ".NET Framework 3.5 (includes .NET 2.0 and 3.0)", FEAT, "NET-Framework-Features", False,
     "Removed"),
    ("NET-Framework-45-Features", ".NET Framework 4.8 Features", FEAT, None, False, "Installed"),
    ("NET-Framework-45-Core", ".NET Framework 4.8", FEAT, "NET-Framework-45-Features", False, "Installed"),
    ("NET-Framework-45-ASPNET", "ASP.NET 4.8", FEAT, "NET-Framework-45-Features", False, "Available"),
    ("NET-WCF-Services45", "WCF Services", FEAT, "NET-Framework-45-Features", False, "Installed"),
    ("NET-WCF-TCP-PortSharing45", "TCP Port Sharing", FEAT, "NET-WCF-Services45", False, "Installed"),
    ("BitLocker", "BitLocker Drive Encryption", FEAT, None, True, "Available"),
    ("Containers", "Containers", FEAT, None, True, "Available"),
    ("Failover-Clustering", "Failover Clustering", FEAT, None, False, "Available"),
    ("Multipath-IO", "Multipath I/O", FEAT, None, False, "Available"),
    ("RSAT", "Remote Server Administration Tools", FEAT, None, False, "Available"),
    ("RSAT-Feature-Tools", "Feature Administration Tools", FEAT, "RSAT", False, "Available"),
    ("RSAT-Clustering", "Failover Clustering Tools", FEAT, "RSAT-Feature-Tools", False, "Available"),
    ("RSAT-Clustering-Mgmt", "Failover Cluster Management Tools", FEAT, "RSAT-Clustering", False, "Available"),
    ("RSAT-Clustering-PowerShell", "Failover Cluster Module for Windows PowerShell", FEAT, "RSAT-Clustering", False,
     "Available"),
    ("RSAT-Role-Tools", "Role Administration Tools", FEAT, "RSAT", False, "Available"),
    ("RSAT-AD-Tools", "AD DS and AD LDS Tools", FEAT, "RSAT-Role-Tools", False, "Available"),
    ("RSAT-AD-PowerShell", "Active Directory module for Windows PowerShell", FEAT, "RSAT-AD-Tools", False,
     "Available"),
    ("RSAT-ADDS", "AD DS Tools", FEAT, "RSAT-AD-Tools", False, "Available"),
    ("RSAT-Hyper-V-Tools", "Hyper-V Management Tools", FEAT, "RSAT-Role-Tools", False, "Available"),
    ("Hyper-V-Tools", "Hyper-V GUI Management Tools", FEAT, "RSAT-Hyper-V-Tools", False, "Available"),
    ("Hyper-V-PowerShell", "Hyper-V Module for Windows PowerShell", FEAT, "RSAT-Hyper-V-Tools", False, "Available"),
    ("RSAT-DHCP", "DHCP Server Tools", FEAT, "RSAT-Role-Tools", False, "Available"),
    ("RSAT-DNS-Server", "DNS Server Tools", FEAT, "RSAT-Role-Tools", False, "Available"),
    ("FS-SMB1", "SMB 1.0/CIFS File Sharing Support", FEAT, None, True, "Available"),
    ("SNMP-Service", "SNMP Service", FEAT, None, False, "Available"),
    ("System-DataArchiver", "System Data Archiver", FEAT, None, False, "Installed"),
    ("Telnet-Client", "Telnet Client", FEAT, None, False, "Available"),
    ("Windows-Defender", "Microsoft Defender Antivirus", FEAT, None, True, "Installed"),
    ("PowerShellRoot", "Windows PowerShell", FEAT, None, False, "Installed"),
    ("PowerShell", "Windows PowerShell 5.1", FEAT, "PowerShellRoot", False, "Installed"),
    ("PowerShell-V2", "Windows PowerShell 2.0 Engine", FEAT, "PowerShellRoot", False, "Available"),
    ("PowerShell-ISE", "Windows PowerShell ISE", FEAT, "PowerShellRoot", False, "Installed"),
    ("Windows-Server-Backup", "Windows Server Backup", FEAT, None, False, "Available"),
    ("WoW64-Support", "WoW64 Support", FEAT, None, False, "Installed"),
    ("XPS-Viewer", "XPS Viewer", FEAT, None, False, "Installed"),
]

# -IncludeManagementTools: the tools Server Manager adds with a role or feature.
MANAGEMENT_TOOLS = {
    "Hyper-V": ["RSAT-Hyper-V-Tools", "Hyper-V-Tools", "Hyper-V-PowerShell"],
    "Failover-Clustering": ["RSAT-Clustering", "RSAT-Clustering-Mgmt", "RSAT-Clustering-PowerShell"],
    "AD-Domain-Services": ["RSAT-AD-Tools", "RSAT-AD-PowerShell", "RSAT-ADDS"],
    "DHCP": ["RSAT-DHCP"],
    "DNS": ["RSAT-DNS-Server"],
    "Web-Server": ["Web-Mgmt-Tools", "Web-Mgmt-Console"],
}

# Services a feature brings once it is installed (after its restart, for the ones that need one).
FEATURE_SERVICES = {
    "Containers": [
        {"name": "vmcompute", "display_name": "Hyper-V Host Compute Service",
         "binary_path_name": r"C:\Windows\system32\vmcompute.exe", "start_mode": "manual", "status": "Stopped",
         "description": "Provides support for running Windows Containers and Virtual Machines."},
    ],
    "Hyper-V": [
        {"name": "vmms", "display_name": "Hyper-V Virtual Machine Management",
         "binary_path_name": r"C:\Windows\system32\vmms.exe", "start_mode": "auto", "status": "Running",
         "description": "Management service for Hyper-V, provides service to run multiple virtual machines."},
    ],
}

FEATURES = {}
for _i, (_n, _d, _t, _p, _r, _s) in enumerate(_FEATURES, start=1):
    FEATURES[_n] = {"name": _n, "display_name": _d, "feature_type": _t, "parent": _p, "restart": _r,
                    "default": _s, "id": _i}
for _n, _f in FEATURES.items():
    _f["sub_features"] = [m for m, g in FEATURES.items() if g["parent"] == _n]

FEATURES_LOWER = {k.lower(): k for k in FEATURES}

# DISM optional features. "feature": the Server Manager feature it is the same package as.
OPTIONAL_FEATURES = {
    "Microsoft-Hyper-V": {"display_name": "Hyper-V", "feature": "Hyper-V", "restart": "Required"},
    "Microsoft-Hyper-V-Management-PowerShell": {"display_name": "Hyper-V Module for Windows PowerShell",
                                                "feature": "Hyper-V-PowerShell", "restart": "Possible"},
    "Microsoft-Hyper-V-Management-Clients": {"display_name": "Hyper-V GUI Management Tools",
                                             "feature": "Hyper-V-Tools", "restart": "Possible"},
    "Containers": {"display_name": "Containers", "feature": "Containers", "restart": "Required"},
    "NetFx3": {"display_name": ".NET Framework 3.5 (includes .NET 2.0 and 3.0)", "feature": "NET-Framework-Core",
               "restart": "Possible"},
    "NetFx4": {"display_name": ".NET Framework 4.8", "feature": "NET-Framework-45-Core", "restart": "Possible"},
    "Windows-Defender": {"display_name": "Microsoft Defender Antivirus", "feature": "Windows-Defender",
                         "restart": "Required"},
    "SMB1Protocol": {"display_name": "SMB 1.0/CIFS File Sharing Support", "feature": "FS-SMB1",
                     "restart": "Required"},
    "TelnetClient": {"display_name": "Telnet Client", "feature": "Telnet-Client", "restart": "Possible"},
    "MicrosoftWindowsPowerShellV2": {"display_name": "Windows PowerShell 2.0 Engine", "feature": "PowerShell-V2",
                                     "restart": "Possible"},
    "MicrosoftWindowsPowerShellISE": {"display_name": "Windows PowerShell ISE", "feature": "PowerShell-ISE",
                                      "restart": "Possible"},
    "IIS-WebServerRole": {"display_name": "Internet Information Services", "feature": "Web-Server",
                          "restart": "Possible"},
    "FailoverCluster-FullServer": {"display_name": "Failover Clustering", "feature": "Failover-Clustering",
                                   "restart": "Possible"},
    # Not Server Manager features: state kept on their own.
    "Microsoft-Windows-Subsystem-Linux": {"display_name": "Windows Subsystem for Linux", "feature": None,
                                          "restart": "Required", "default": "Disabled"},
    "VirtualMachinePlatform": {"display_name": "Virtual Machine Platform", "feature": None,
                               "restart": "Required", "default": "Disabled"},
}
OPTIONAL_LOWER = {k.lower(): k for k in OPTIONAL_FEATURES}

# Server Manager InstallState <-> DISM FeatureState
# (https://learn.microsoft.com/dotnet/api/microsoft.dism.commands.featurestate ... as the DISM module shows it).
FEATURE_TO_DISM = {"Installed": "Enabled", "Available": "Disabled", "InstallPending": "EnablePending",
                   "UninstallPending": "DisablePending", "Removed": "DisabledWithPayloadRemoved"}
DISM_TO_FEATURE = {v: k for k, v in FEATURE_TO_DISM.items()}

SVCHOST = r"C:\Windows\system32\svchost.exe"
DEFENDER_DIR = r"C:\ProgramData\Microsoft\Windows Defender\Platform\4.18.24090.11-0"


def _svc(name, display, path, mode, status, depends=(), description=""):
    return {"name": name, "display_name": display, "binary_path_name": path, "start_mode": mode, "status": status,
            "depends_on": list(depends), "description": description, "start_name": "LocalSystem",
            "service_type": "Win32OwnProcess" if "svchost" not in path else "Win32ShareProcess",
            "failure_actions": None}


DEFAULT_SERVICES = [
    _svc("RpcSs", "Remote Procedure Call (RPC)", SVCHOST + " -k rpcss -p", "auto", "Running"),
    _svc("WinRM", "Windows Remote Management (WS-Management)", SVCHOST + " -k NetworkService -p", "auto",
         "Running", ["RPCSS"], "Windows Remote Management (WinRM) service implements the WS-Management protocol "
                               "for remote management."),
    _svc("EventLog", "Windows Event Log", SVCHOST + " -k LocalServiceNetworkRestricted -p", "auto", "Running"),
    _svc("Schedule", "Task Scheduler", SVCHOST + " -k netsvcs -p", "auto", "Running", ["RPCSS"]),
    _svc("Dnscache", "DNS Client", SVCHOST + " -k NetworkService -p", "auto", "Running"),
    _svc("LanmanWorkstation", "Workstation", SVCHOST + " -k NetworkService -p", "auto", "Running"),
    _svc("LanmanServer", "Server", SVCHOST + " -k smbsvcs", "auto", "Running"),
    _svc("BFE", "Base Filtering Engine", SVCHOST + " -k LocalServiceNoNetworkFirewall -p", "auto", "Running",
         ["RpcSs"]),
    _svc("mpssvc", "Windows Defender Firewall", SVCHOST + " -k LocalServiceNoNetworkFirewall -p", "auto",
         "Running", ["BFE"]),
    _svc("WinDefend", "Microsoft Defender Antivirus Service", '"%s\\MsMpEng.exe"' % DEFENDER_DIR, "auto",
         "Running", ["RpcSs"]),
    _svc("W32Time", "Windows Time", SVCHOST + " -k LocalService", "manual", "Running"),
    _svc("Spooler", "Print Spooler", r"C:\Windows\System32\spoolsv.exe", "auto", "Running", ["RPCSS", "http"]),
    _svc("wuauserv", "Windows Update", SVCHOST + " -k netsvcs -p", "manual", "Stopped", ["rpcss"]),
    _svc("TrustedInstaller", "Windows Modules Installer", r"C:\Windows\servicing\TrustedInstaller.exe", "manual",
         "Stopped"),
]
# Spooler's "http" is a driver, not a Win32 service: dependencies on names that are not services are
# ignored (the simulator models Win32 services only).

SEED_DIRS = [
    r"C:\Windows\System32\WindowsPowerShell\v1.0\Modules", r"C:\Windows\System32\Wbem",
    r"C:\Windows\System32\OpenSSH", r"C:\Windows\System32\drivers\etc", r"C:\Windows\Temp",
    r"C:\Windows\servicing", r"C:\Program Files\WindowsPowerShell\Modules", r"C:\Program Files (x86)",
    r"C:\ProgramData", DEFENDER_DIR, r"C:\Users\Administrator\Documents", r"C:\Users\Public",
]
SEED_FILES = [
    r"C:\Windows\System32\svchost.exe", r"C:\Windows\System32\cmd.exe", r"C:\Windows\System32\sc.exe",
    r"C:\Windows\System32\shutdown.exe", r"C:\Windows\System32\netsh.exe", r"C:\Windows\System32\spoolsv.exe",
    r"C:\Windows\System32\schtasks.exe",
    r"C:\Windows\System32\WindowsPowerShell\v1.0\powershell.exe", r"C:\Windows\servicing\TrustedInstaller.exe",
    r"C:\Windows\System32\OpenSSH\ssh.exe", DEFENDER_DIR + r"\MsMpEng.exe",
    # bsdtar, shipped in System32 since Windows 10 1803 / Server 2019 (win_unarchive runs it)
    r"C:\Windows\System32\tar.exe",
]
SEED_TEXT_FILES = {
    r"C:\Windows\System32\drivers\etc\hosts": "# Copyright (c) 1993-2009 Microsoft Corp.\r\n#\r\n"
                                              "# This is a sample HOSTS file used by Microsoft TCP/IP for Windows.\r\n",
}
# Binaries that appear with a feature (written to the simulated disk when the feature is installed).
FEATURE_FILES = {
    "Containers": [r"C:\Windows\System32\vmcompute.exe"],
    "Hyper-V": [r"C:\Windows\System32\vmms.exe", r"C:\Windows\System32\vmwp.exe"],
}


def default_machine_env(processors: int) -> dict:
    return {
        "ComSpec": r"C:\Windows\system32\cmd.exe",
        "DriverData": r"C:\Windows\System32\Drivers\DriverData",
        "NUMBER_OF_PROCESSORS": str(processors),
        "OS": "Windows_NT",
        "Path": (r"C:\Windows\system32;C:\Windows;C:\Windows\System32\Wbem;"
                 r"C:\Windows\System32\WindowsPowerShell\v1.0\;C:\Windows\System32\OpenSSH" + "\\"),
        "PATHEXT": ".COM;.EXE;.BAT;.CMD;.VBS;.VBE;.JS;.JSE;.WSF;.WSH;.MSC",
        "PROCESSOR_ARCHITECTURE": "AMD64",
        "PROCESSOR_IDENTIFIER": "Intel64 Family 6 Model 85 Stepping 7, GenuineIntel",
        "PROCESSOR_LEVEL": "6",
        "PROCESSOR_REVISION": "5507",
        "PSModulePath": r"C:\Program Files\WindowsPowerShell\Modules;C:\Windows\system32\WindowsPowerShell\v1.0\Modules",
        "TEMP": r"C:\Windows\TEMP",
        "TMP": r"C:\Windows\TEMP",
        "USERNAME": "SYSTEM",
        "windir": r"C:\Windows",
    }


def _rule(name, display, group, direction, action, protocol, local_port, enabled, profile, program="Any",
          remote_port=("Any",), description=""):
    return {"name": name, "display_name": display, "description": description, "display_group": group,
            "direction": direction, "action": action, "protocol": protocol, "local_port": list(local_port),
            "remote_port": list(remote_port), "program": program, "enabled": enabled, "profile": profile}


DEFAULT_FIREWALL_RULES = [
    _rule("WINRM-HTTP-In-TCP", "Windows Remote Management (HTTP-In)", "Windows Remote Management", "Inbound",
          "Allow", "TCP", ["5985"], True, "Domain, Private", "System",
          description="Inbound rule for Windows Remote Management via WS-Management. [TCP 5985]"),
    _rule("WINRM-HTTP-In-TCP-PUBLIC", "Windows Remote Management (HTTP-In)", "Windows Remote Management",
          "Inbound", "Allow", "TCP", ["5985"], True, "Public", "System",
          description="Inbound rule for Windows Remote Management via WS-Management. [TCP 5985]"),
    _rule("RemoteDesktop-UserMode-In-TCP", "Remote Desktop - User Mode (TCP-In)", "Remote Desktop", "Inbound",
          "Allow", "TCP", ["3389"], False, "Any", r"%SystemRoot%\system32\svchost.exe"),
    _rule("FPS-ICMP4-ERQ-In", "File and Printer Sharing (Echo Request - ICMPv4-In)", "File and Printer Sharing",
          "Inbound", "Allow", "ICMPv4", ["Any"], False, "Any"),
    _rule("CoreNet-DHCP-In", "Core Networking - Dynamic Host Configuration Protocol (DHCP-In)", "Core Networking",
          "Inbound", "Allow", "UDP", ["68"], True, "Any", r"%SystemRoot%\system32\svchost.exe", ["67"]),
]


# Classic event logs of a fresh Server 2022 host and some of the sources registered with them
# (HKLM\SYSTEM\CurrentControlSet\Services\EventLog\<log>\<source>). Programs that write events
# register their own source (EventCreate-style, as Go's eventlog.InstallAsEventCreate does).
EVENT_LOGS = {
    "Application": ["Application", "Application Error", "Application Hang", "MsiInstaller", "Windows Error Reporting",
                    "Microsoft-Windows-Security-SPP", "Desktop Window Manager", "WSH"],
    "System": ["EventLog", "Service Control Manager", "Microsoft-Windows-Kernel-General", "User32",
               "Microsoft-Windows-Kernel-Power"],
}
