"""setup (Windows facts): phase run -> {"ansible_facts": {...}}.

The fact names and how each is derived follow ansible.windows' setup.ps1 (ansible_distribution =
Win32_OperatingSystem.Caption, ansible_os_name = the first part of Win32_OperatingSystem.Name,
ansible_distribution_version / ansible_kernel = [Environment]::OSVersion.Version, ansible_memtotal_mb =
ceil(TotalPhysicalMemory / 1 MiB), ...). ``ansible_windows_build`` (the build as an int) is mixop's own.
``args.gather_subset`` containing "features" adds ``ansible_windows_features``:
[{"name", "display_name", "install_state"}] for every role and feature (Get-WindowsFeature).
"""

import datetime
import math
import time


def run(ctx):
    ps = ctx.ps
    osi = ps.get_cim_instance("Win32_OperatingSystem")
    cs = ps.get_cim_instance("Win32_ComputerSystem")
    comp = ctx.host.data["computer"]
    ips = ps.get_net_ip_address()
    v4 = [a["IPAddress"] for a in ips if a["AddressFamily"] == "IPv4" and a["PrefixOrigin"] != "WellKnown"]
    v6 = [a["IPAddress"] for a in ips if a["AddressFamily"] == "IPv6"]
    version = "%s.0" % osi["Version"]  # [Environment]::OSVersion.Version: 10.0.20348.0
    boot = osi["LastBootUpTimeUnix"]
    domain = comp["domain"] if comp["part_of_domain"] else ""
    name = comp["name"]
    env = {}
    for k in sorted(ps.process_env):
        env[k] = str(ps.process_env[k]).rstrip("\\")
    env.update({k: str(v).rstrip("\\") for k, v in ps.request_env.items()})
    facts = {
        "ansible_hostname": name,
        "ansible_fqdn": name + ("." + domain if domain else ""),
        "ansible_nodename": name + ("." + domain if domain else ""),
        "ansible_domain": domain,
        "ansible_netbios_name": name.upper()[:15],
        "ansible_os_family": "Windows",
        "ansible_system": "Win32NT",
        "ansible_distribution": osi["Caption"],
        "ansible_distribution_version": version,
        "ansible_distribution_major_version": version.split(".")[0],
        "ansible_os_name": osi["Name"].split("|")[0].strip(),
        "ansible_os_product_type": {1: "workstation", 2: "domain_controller", 3: "server"}.get(osi["ProductType"],
                                                                                               "unknown"),
        "ansible_os_installation_type": comp.get("installation_type", "Server"),
        "ansible_kernel": version,
        "ansible_architecture": osi["OSArchitecture"],
        "ansible_architecture2": "x86_64",
        "ansible_processor_vcpus": cs["NumberOfLogicalProcessors"],
        "ansible_processor_count": cs["NumberOfProcessors"],
        "ansible_processor_cores": ps.get_cim_instance("Win32_Processor")["NumberOfCores"],
        "ansible_memtotal_mb": int(math.ceil(cs["TotalPhysicalMemory"] / 1024 / 1024)),
        "ansible_swaptotal_mb": 0,
        "ansible_ip_addresses": v4 + v6,
        "ansible_all_ipv4_addresses": v4,
        "ansible_all_ipv6_addresses": v6,
        "ansible_windows_build": int(comp["build_number"]),
        "ansible_powershell_version": int(str(comp.get("ps_version", "5.1")).split(".")[0]),
        "ansible_lastboot": datetime.datetime.fromtimestamp(boot, datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%SZ"),
        "ansible_uptime_seconds": max(0, int(round(time.time() - boot))),
        "ansible_reboot_pending": ps.test_reboot_pending(),
        "ansible_windows_domain": comp["domain"],
        "ansible_windows_domain_member": bool(comp["part_of_domain"]),
        "ansible_windows_domain_role": "Member server" if comp["part_of_domain"] else "Stand-alone server",
        "ansible_system_vendor": cs["Manufacturer"],
        "ansible_product_name": cs["Model"],
        "ansible_owner_name": comp.get("registered_owner", ""),
        "ansible_env": env,
    }
    subset = ctx.arg("gather_subset", ["all"])
    subset = [str(s).lower() for s in (subset if isinstance(subset, (list, tuple)) else [subset])]
    if "features" in subset:
        facts["ansible_windows_features"] = [
            {"name": f["Name"], "display_name": f["DisplayName"], "install_state": f["InstallState"]}
            for f in ps.get_windows_feature()]
    return {"ansible_facts": facts}
