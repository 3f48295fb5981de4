#!/usr/bin/env python3
"""Writes docs/windows-modules.md from the Windows modules' own documentation (the `//!` comment
at the top of each src/modules/windows/*.rs) and one example each, so the reference cannot drift
from the code: tests/docs_current.rs fails when the file is not what this script writes.

    python3 scripts/windows-modules-doc.py          # rewrite docs/windows-modules.md
    python3 scripts/windows-modules-doc.py --check  # exit 1 if it is out of date
"""
import os
import re
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SRC = os.path.join(ROOT, "src", "modules", "windows")
OUT = os.path.join(ROOT, "docs", "windows-modules.md")

TITLES = {"command.rs": "win_command, win_shell", "setup.rs": "setup (gather_facts) on Windows",
          "win_copy.rs": "win_copy, win_template"}

EXAMPLES = {
    "command.rs": r"""- win_command: C:\k3s\k3s.exe --version
  register: k3s_version
- win_shell: Get-Service containerd | Select-Object -ExpandProperty Status
  args: {chdir: 'C:\Program Files\containerd'}""",
    "setup.rs": r"""- hosts: windows
  gather_facts: true   # ansible_windows_build, ansible_memtotal_mb, ansible_processor_vcpus, ...""",
    "win_copy.rs": r"""- win_copy: {src: files/k3s.exe, dest: 'C:\k3s\k3s.exe'}
- win_template: {src: templates/k3s-agent-config.yaml.j2, dest: 'C:\etc\rancher\k3s\config.yaml'}""",
    "win_defender_exclusion.rs": r"""- win_defender_exclusion:
    path: ['C:\var\lib\rancher', 'C:\run\flannel']
    process: [k3s.exe, containerd.exe]""",
    "win_environment.rs": r"""- win_environment: {name: CONTAINERD_ADDRESS, value: '\\.\pipe\containerd-containerd', level: machine}""",
    "win_eventlog_info.rs": r"""- win_eventlog_info: {log: Application, source: [k3s, containerd], newest: 20}
  register: events""",
    "win_feature.rs": r"""- win_feature: {name: Containers, include_management_tools: true}
  register: features
- win_reboot: {}
  when: features.reboot_required""",
    "win_file.rs": r"""- win_file: {path: 'C:\etc\rancher\k3s', state: directory}""",
    "win_firewall_rule.rs": r"""- win_firewall_rule:
    name: flannel-vxlan
    localport: "4789"
    protocol: udp
    direction: in
    action: allow
    group: kubernetes""",
    "win_get_url.rs": r"""- win_get_url:
    url: https://github.com/containerd/containerd/releases/download/v2.3.0/containerd-2.3.0-windows-amd64.tar.gz
    dest: 'C:\Windows\Temp\'
    checksum: "{{ containerd_sha256 }}"
    checksum_algorithm: sha256""",
    "win_hns_network.rs": r"""- win_hns_network: {name: vxlan0, state: absent}""",
    "win_optional_feature.rs": r"""- win_optional_feature: {name: Microsoft-Hyper-V, include_parent: true}
  register: hyperv""",
    "win_path.rs": r"""- win_path: {elements: ['C:\usr\local\bin'], scope: machine}""",
    "win_ping.rs": r"""- win_ping: {}""",
    "win_group.rs": r"""- win_group: {name: k8s-admins, description: Cluster administrators}""",
    "win_powershell.rs": r"""- win_powershell:
    script: |
      param($Name)
      if ((Get-Service $Name).Status -eq 'Running') { $Ansible.Changed = $false } else { Start-Service $Name }
    parameters: {Name: containerd}""",
    "win_regedit.rs": r"""- win_regedit:
    path: 'HKLM:\SYSTEM\CurrentControlSet\Services\hns\State'
    name: EnableCompartmentNamespace
    data: 1
    type: dword""",
    "win_reboot.rs": r"""- win_reboot: {reboot_timeout: 900, test_command: 'Get-Service containerd'}""",
    "win_scheduled_task.rs": r"""- win_scheduled_task:
    name: k3s-agent
    actions: [{path: 'C:\k3s\k3s.exe', arguments: 'agent --config C:\etc\rancher\k3s\config.yaml'}]
    triggers: [{type: boot}]
    username: SYSTEM
    run_level: highest
    restart_count: 999
    restart_interval: PT1M
    execution_time_limit: PT0S""",
    "win_scheduled_task_stat.rs": r"""- win_scheduled_task_stat: {name: k3s-agent}
  register: agent
- win_command: schtasks.exe /Run /TN k3s-agent
  when: agent.state.status | default('') != 'TASK_STATE_RUNNING'""",
    "win_service.rs": r"""- win_service:
    name: containerd
    path: '"C:\Program Files\containerd\bin\containerd.exe" --run-service'
    start_mode: auto
    state: started""",
    "win_stat.rs": r"""- win_stat: {path: 'C:\k3s\k3s.exe'}
  register: k3s_exe""",
    "win_unarchive.rs": r"""- win_unarchive: {src: 'C:\Windows\Temp\containerd-2.3.0-windows-amd64.tar.gz', dest: 'C:\Program Files\containerd'}""",
    "win_user.rs": r"""- win_user:
    name: k8s-deploy
    password: "{{ vault_deploy_password }}"
    password_never_expires: true
    groups: [Remote Management Users]
    groups_action: add""",
    "win_wait_for.rs": r"""- win_wait_for: {host: 10.0.0.10, port: 6443, timeout: 30}""",
}


def module_doc(path):
    lines = []
    for line in open(path, encoding="utf-8"):
        if not line.startswith("//!"):
            break
        lines.append(line[3:].removeprefix(" ").rstrip("\n"))
    return "\n".join(lines).strip()


def render():
    files = sorted(f for f in os.listdir(SRC) if f.endswith(".rs") and f != "mod.rs" and f != "winpath.rs")
    out = ["# Windows modules", "",
           "Generated by `scripts/windows-modules-doc.py` from each module's documentation in",
           "`src/modules/windows/` (do not edit by hand; `tests/docs_current.rs` checks it is current).",
           "Every module runs through the PowerShell module protocol (docs/windows-protocol.md): arguments",
           "travel as a JSON document, never spliced into script text; each supports `--check`, and",
           "`--diff` where it means something. Tested against the project's Windows host simulator",
           "(tests/support/winrm_peer/README.md), never on a real Windows host.", ""]
    missing = [f for f in files if f not in EXAMPLES]
    if missing:
        sys.exit("no example for %s: add one to EXAMPLES" % ", ".join(missing))
    for f in files:
        doc = module_doc(os.path.join(SRC, f))
        title = re.match(r"`([a-z_]+)`", doc)
        name = TITLES.get(f) or (title.group(1) if title else f[:-3])
        out += ["## %s" % name, "", doc, "", "```yaml", EXAMPLES[f], "```", "",
                "Source: `src/modules/windows/%s`." % f, ""]
    return "\n".join(out)


def main():
    text = render()
    if "--check" in sys.argv:
        current = open(OUT, encoding="utf-8").read() if os.path.exists(OUT) else ""
        if current != text:
            sys.exit("docs/windows-modules.md is out of date: run python3 scripts/windows-modules-doc.py")
        return
    with open(OUT, "w", encoding="utf-8") as fh:
        fh.write(text)


if __name__ == "__main__":
    main()
