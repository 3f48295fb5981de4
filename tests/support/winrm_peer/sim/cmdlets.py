"""The simulated cmdlet layer: what the cmdlets a module script calls do to the host's state.

Written from Microsoft's documentation of each cmdlet (parameters, states, output objects) and from
PowerShell's own sources for its messages where those are public (PowerShell/PowerShell:
src/Microsoft.PowerShell.Commands.Management/commands/management/Service.cs and
resources/ServiceResources.resx) - not from mixop's scripts. Output objects are dicts with the
property names the real objects have (``InstallState``, ``StartType`` ...), enums as their string
values, so a handler reads them the way its ``.ps1`` would. Failures raise `CmdletError` carrying
what the ErrorRecord would (exception type, category, FullyQualifiedErrorId, message).

Where a message or id could not be checked against a source it is marked "best recollection".
Handlers get an instance as ``ctx.ps``; every method works on ``HostState.data`` under the host
lock (the dispatcher holds it for the whole request).
"""

from __future__ import annotations

import datetime
import fnmatch
import hashlib
import ipaddress
import re
import struct
import time
import uuid

from . import catalog
from .errors import (CmdletError, cim_already_exists, cim_not_found, dotnet_method, enum_binding,
                     parameter_null, path_not_found, validate_set)
from .accounts import Accounts
from .registry import Registry, is_registry_path
from .state import FsError, HostState

SM = "Microsoft.Windows.ServerManager.Commands."
PSC = "Microsoft.PowerShell.Commands."
DISM = "Microsoft.Dism.Commands."
SVC_EXC = "Microsoft.PowerShell.Commands.ServiceCommandException"
CIM_EXC = "Microsoft.Management.Infrastructure.CimException"

SCHED_S_TASK_HAS_NOT_RUN = 0x41303  # 267011
SCHED_S_TASK_RUNNING = 0x41301  # 267009
SCHED_S_TASK_TERMINATED = 0x41306  # 267014
ERROR_FILE_NOT_FOUND_HRESULT = 0x80070002  # 2147942402
PS_FILE_NOT_FOUND_EXIT = 0xFFFD0000  # powershell.exe -File <missing script> exit code (4294770688)

FILE_ATTRIBUTE_ORDER = ["ReadOnly", "Hidden", "System", "Directory", "Archive", "Device", "Normal", "Temporary",
                        "SparseFile", "ReparsePoint", "Compressed", "Offline", "NotContentIndexed", "Encrypted"]


def iso(ts: float | None) -> str | None:
    if ts is None:
        return None
    return datetime.datetime.fromtimestamp(ts, datetime.timezone.utc).isoformat().replace("+00:00", "Z")


def as_list(v) -> list:
    if v is None:
        return []
    if isinstance(v, (list, tuple)):
        return list(v)
    return [v]


def has_wildcard(s: str) -> bool:
    return any(c in s for c in "*?[")


def wild_match(pattern: str, name: str) -> bool:
    return fnmatch.fnmatchcase(name.lower(), pattern.lower())


def attr_string(attrs: list[str]) -> str:
    """[System.IO.FileAttributes] flags as .ToString() prints them ("ReadOnly, Archive")."""
    s = {a.strip().lower() for a in attrs if a and a.strip()}
    ordered = [a for a in FILE_ATTRIBUTE_ORDER if a.lower() in s]
    return ", ".join(ordered) if ordered else "Normal"


class Cmdlets:
    def __init__(self, host: HostState, process_env: dict | None = None, request_env: dict | None = None):
        self.host = host
        self.fs = host.fs
        self.process_env = process_env if process_env is not None else self.fresh_process_env(host)
        self.request_env = dict(request_env or {})

    @property
    def d(self) -> dict:
        return self.host.data

    @property
    def registry(self) -> Registry:
        """The registry provider (sim/registry.py): Test-Path, Get-Item, New-Item, Remove-Item on a registry
        path go there too."""
        return Registry(self)

    @property
    def accounts(self) -> Accounts:
        """Local users and groups (sim/accounts.py): the LocalAccounts cmdlets, ADSI WinNT and LogonUserW."""
        return Accounts(self)

    # ============================================================================================
    # Server Manager features
    # https://learn.microsoft.com/powershell/module/servermanager/get-windowsfeature
    # https://learn.microsoft.com/powershell/module/servermanager/install-windowsfeature
    # https://learn.microsoft.com/powershell/module/servermanager/uninstall-windowsfeature
    # ============================================================================================

    def _feature_path(self, name: str) -> tuple[str, int]:
        chain = []
        n = name
        while n:
            chain.append(catalog.FEATURES[n]["display_name"])
            n = catalog.FEATURES[n]["parent"]
        return "\\".join(reversed(chain)), len(chain)

    def _feature_obj(self, name: str) -> dict:
        f = catalog.FEATURES[name]
        state = self.d["features"][name]
        path, depth = self._feature_path(name)
        return {"Name": name, "DisplayName": f["display_name"], "Description": "", "Installed": state == "Installed",
                "InstallState": state, "FeatureType": f["feature_type"], "Path": path, "Depth": depth,
                "Parent": f["parent"], "SubFeatures": list(f["sub_features"]), "DependsOn": [],
                "Id": f["id"]}

    def get_windows_feature(self, name=None) -> list[dict]:
        """Get-WindowsFeature [-Name <string[]>]: wildcards allowed; a name that matches nothing is
        simply not in the output (the cmdlet writes no error)."""
        names = [str(n) for n in as_list(name)]
        out = []
        for n in catalog.FEATURES:
            if not names or any(wild_match(p, n) if has_wildcard(p) else p.lower() == n.lower() for p in names):
                out.append(self._feature_obj(n))
        return out

    def _descendants(self, name: str) -> list[str]:
        out = []
        for s in catalog.FEATURES[name]["sub_features"]:
            out.append(s)
            out.extend(self._descendants(s))
        return out

    def _ancestors(self, name: str) -> list[str]:
        out = []
        p = catalog.FEATURES[name]["parent"]
        while p:
            out.append(p)
            p = catalog.FEATURES[p]["parent"]
        return list(reversed(out))

    def _canon_features(self, names, cmd: str, cmd_type: str) -> list[str]:
        out = []
        if not as_list(names):
            raise parameter_null("Name", cmd, SM + cmd_type)
        for n in as_list(names):
            canon = catalog.FEATURES_LOWER.get(str(n).lower())
            if canon is None:
                # best recollection of Server Manager's message; CategoryInfo shows
                # "InvalidArgument: (name:String) [Install-WindowsFeature], Exception".
                raise CmdletError(
                    "ArgumentNotValid: The role, role service, or feature name is not valid: '%s'. The name was not "
                    "found." % n, "System.Exception", "InvalidArgument", "NameDoesNotExist," + SM + cmd_type, cmd, n)
            if canon not in out:
                out.append(canon)
        return out

    def _feature_result(self, name: str, restart: bool) -> dict:
        f = catalog.FEATURES[name]
        return {"Id": f["id"], "Name": name, "DisplayName": f["display_name"], "Message": [],
                "RestartNeeded": restart, "SkipReason": "NotSkipped", "Success": True}

    @staticmethod
    def _operation_result(results: list[dict]) -> dict:
        # FeatureOperationResult: Success, RestartNeeded (RestartState: No/Yes/Maybe), FeatureResult[],
        # ExitCode (FeatureOperationExitCode: Success, SuccessRestartRequired, NoChangeNeeded, ...).
        restart = any(r["RestartNeeded"] for r in results)
        code = "NoChangeNeeded" if not results else ("SuccessRestartRequired" if restart else "Success")
        return {"Success": True, "RestartNeeded": "Yes" if restart else "No", "FeatureResult": results,
                "ExitCode": code}

    def install_windows_feature(self, name, include_all_sub_feature=False, include_management_tools=False,
                                source=None, restart=False, whatif=False) -> dict:
        cmd, cmd_type = "Install-WindowsFeature", "AddWindowsFeatureCommand"
        names = self._canon_features(name, cmd, cmd_type)
        wanted: list[str] = []

        def add(n):
            for a in self._ancestors(n) + [n]:
                if a not in wanted:
                    wanted.append(a)

        for n in names:
            add(n)
            if include_all_sub_feature:
                for s in self._descendants(n):
                    add(s)
        if include_management_tools:
            # the tools of every role/feature being installed, parents included (Web-Default-Doc brings
            # Web-Server, whose tools are the IIS console)
            for n in list(wanted):
                for t in catalog.MANAGEMENT_TOOLS.get(n, []):
                    add(t)
        feats = self.d["features"]
        todo = [n for n in wanted if feats[n] not in ("Installed", "InstallPending")]
        removed = [n for n in todo if feats[n] == "Removed"]
        if removed and not (source and self.fs.exists(str(source))):
            raise CmdletError(
                "The request to add or remove features on the specified server failed.\r\nInstallation of one or more "
                "roles, role services, or features failed.\r\nThe source files could not be found. \r\nUse the "
                "\"Source\" option to specify the location of the files that are required to restore the feature. For "
                "more information on specifying a source location, see http://go.microsoft.com/fwlink/?LinkId=243077."
                " Error: 0x800f081f", "System.Exception", "InvalidOperation",
                "DISMAPI_Error__Failed_To_Enable_Updates," + SM + cmd_type, cmd)
        if "Hyper-V" in todo and not self.d["computer"].get("virtualization_capable", True):
            # best recollection: the prerequisite check on a VM without nested virtualization
            raise CmdletError(
                "A prerequisite check for the Hyper-V feature failed.\r\n1. Hyper-V cannot be installed: The "
                "processor does not have required virtualization capabilities.", "System.Exception",
                "InvalidOperation", "Alteration_PrerequisiteCheck_Failed," + SM + cmd_type, cmd)
        results = [self._feature_result(n, catalog.FEATURES[n]["restart"]) for n in todo]
        if not whatif:
            for n in todo:
                if catalog.FEATURES[n]["restart"]:
                    feats[n] = "InstallPending"
                    self._set_reboot_pending("ServerManager: %s install pending" % n)
                else:
                    self._finish_feature(n, "Installed")
        return self._operation_result(results)

    def uninstall_windows_feature(self, name, include_management_tools=False, remove=False, restart=False,
                                  whatif=False) -> dict:
        cmd, cmd_type = "Uninstall-WindowsFeature", "RemoveWindowsFeatureCommand"
        names = self._canon_features(name, cmd, cmd_type)
        wanted: list[str] = []
        for n in names:
            for x in [n] + self._descendants(n) + (catalog.MANAGEMENT_TOOLS.get(n, []) if include_management_tools
                                                   else []):
                if x not in wanted:
                    wanted.append(x)
        feats = self.d["features"]
        results = []
        for n in wanted:
            st = feats[n]
            needs = catalog.FEATURES[n]["restart"]
            if st in ("Installed", "UninstallPending"):
                if st == "UninstallPending" and not remove:
                    continue
                results.append(self._feature_result(n, needs))
                if whatif:
                    continue
                if needs:
                    feats[n] = "UninstallPending"
                    pend = self.d.setdefault("pending_remove", [])
                    if remove and n not in pend:
                        pend.append(n)
                    self._set_reboot_pending("ServerManager: %s uninstall pending" % n)
                else:
                    self._finish_feature(n, "Removed" if remove else "Available")
            elif st == "InstallPending":
                # best guess: removing a feature whose install waits for a restart cancels it
                results.append(self._feature_result(n, False))
                if not whatif:
                    feats[n] = "Removed" if remove else "Available"
            elif st == "Available" and remove:
                results.append(self._feature_result(n, False))
                if not whatif:
                    feats[n] = "Removed"
        return self._operation_result(results)

    def _finish_feature(self, name: str, state: str) -> None:
        """A feature reaches its final state (now, or at boot for the ones that need a restart)."""
        self.d["features"][name] = state
        if state == "Installed":
            for f in catalog.FEATURE_FILES.get(name, []):
                if not self.fs.exists(f):
                    self.fs.write(f, b"MZ\x90\x00 simulated Windows binary: " + f.rsplit("\\", 1)[-1].encode(),
                                  make_parents=True)
            for s in catalog.FEATURE_SERVICES.get(name, []):
                if s["name"].lower() not in self.d["services"]:
                    svc = dict(s, depends_on=[], start_name="LocalSystem", service_type="Win32OwnProcess",
                               failure_actions=None, marked_for_delete=False)
                    self.d["services"][s["name"].lower()] = svc
        else:
            owned = [s["name"] for s in catalog.FEATURE_SERVICES.get(name, [])]
            if name == "Windows-Defender":
                owned.append("WinDefend")
            for s in owned:
                self.d["services"].pop(s.lower(), None)

    def _set_reboot_pending(self, reason: str) -> None:
        self.d["reboot_pending"] = True
        if reason not in self.d["reboot_pending_reasons"]:
            self.d["reboot_pending_reasons"].append(reason)

    def test_reboot_pending(self) -> bool:
        """What the usual checks (CBS RebootPending, ServerManager RestartRequired, PendingFileRenameOperations;
        see ansible.windows setup.ps1) would find."""
        return bool(self.d.get("reboot_pending"))

    # ============================================================================================
    # DISM optional features
    # https://learn.microsoft.com/powershell/module/dism/get-windowsoptionalfeature
    # https://learn.microsoft.com/powershell/module/dism/enable-windowsoptionalfeature
    # https://learn.microsoft.com/powershell/module/dism/disable-windowsoptionalfeature
    # ============================================================================================

    def _optional_state(self, name: str) -> str:
        o = catalog.OPTIONAL_FEATURES.get(name)
        if o and o.get("feature"):
            return catalog.FEATURE_TO_DISM[self.d["features"][o["feature"]]]
        return self.d["optional_features"].get(name, "Disabled")

    def _optional_obj(self, name: str) -> dict:
        o = catalog.OPTIONAL_FEATURES[name]
        return {"FeatureName": name, "DisplayName": o["display_name"], "Description": "",
                "RestartRequired": o["restart"], "State": self._optional_state(name), "Online": True}

    @staticmethod
    def _unknown_optional(name: str, cmd: str, cmd_type: str) -> CmdletError:
        # DISM reports an unknown name as a COMException "Feature name X is unknown."
        return CmdletError("Feature name %s is unknown." % name, "System.Runtime.InteropServices.COMException",
                           "NotSpecified", DISM + cmd_type, cmd, name)

    def get_windows_optional_feature(self, feature_name=None) -> list[dict]:
        names = [str(n) for n in as_list(feature_name)]
        if not names:
            return [self._optional_obj(n) for n in catalog.OPTIONAL_FEATURES]
        out = []
        for p in names:
            if has_wildcard(p):
                out.extend(self._optional_obj(n) for n in catalog.OPTIONAL_FEATURES if wild_match(p, n))
            else:
                canon = catalog.OPTIONAL_LOWER.get(p.lower())
                if canon is None:
                    raise self._unknown_optional(p, "Get-WindowsOptionalFeature", "GetWindowsOptionalFeatureCommand")
                out.append(self._optional_obj(canon))
        return out

    @staticmethod
    def _image_object(restart: bool) -> dict:
        # Microsoft.Dism.Commands.ImageObject
        return {"Path": None, "Online": True, "WinPath": None, "SysDrivePath": None, "RestartNeeded": restart,
                "LogPath": r"C:\Windows\Logs\DISM\dism.log", "ScratchDirectory": None, "LogLevel": "WarningsInfo"}

    def enable_windows_optional_feature(self, feature_name, all=False, source=None, no_restart=True) -> dict:
        cmd_type = "EnableWindowsOptionalFeatureCommand"
        restart = False
        for p in as_list(feature_name):
            canon = catalog.OPTIONAL_LOWER.get(str(p).lower())
            if canon is None:
                raise self._unknown_optional(p, "Enable-WindowsOptionalFeature", cmd_type)
            o = catalog.OPTIONAL_FEATURES[canon]
            feat = o.get("feature")
            if feat:
                # DISM's own parent/child relations are not modelled: the Server Manager parents come along
                # (as with -All).
                before = self.d["features"][feat]
                if before == "Removed" and not (source and self.fs.exists(str(source))):
                    raise CmdletError("The source files could not be found. \r\nUse the \"Source\" option to specify "
                                      "the location of the files that are required to restore the feature. For more "
                                      "information on specifying a source location, see "
                                      "https://go.microsoft.com/fwlink/?LinkId=243077.",
                                      "System.Runtime.InteropServices.COMException", "NotSpecified",
                                      DISM + cmd_type, "Enable-WindowsOptionalFeature", canon)
                if before in ("Installed", "InstallPending"):
                    continue
                if catalog.FEATURES[feat]["restart"]:
                    self.d["features"][feat] = "InstallPending"
                    self._set_reboot_pending("DISM: %s enable pending" % canon)
                    restart = True
                else:
                    for a in self._ancestors(feat) + [feat]:
                        if self.d["features"][a] not in ("Installed", "InstallPending"):
                            self._finish_feature(a, "Installed")
            else:
                st = self.d["optional_features"].get(canon, "Disabled")
                if st in ("Enabled", "EnablePending"):
                    continue
                if o["restart"] == "Required":
                    self.d["optional_features"][canon] = "EnablePending"
                    self._set_reboot_pending("DISM: %s enable pending" % canon)
                    restart = True
                else:
                    self.d["optional_features"][canon] = "Enabled"
        return self._image_object(restart)

    def disable_windows_optional_feature(self, feature_name, remove=False, no_restart=True) -> dict:
        cmd_type = "DisableWindowsOptionalFeatureCommand"
        restart = False
        for p in as_list(feature_name):
            canon = catalog.OPTIONAL_LOWER.get(str(p).lower())
            if canon is None:
                raise self._unknown_optional(p, "Disable-WindowsOptionalFeature", cmd_type)
            o = catalog.OPTIONAL_FEATURES[canon]
            if o.get("feature"):
                r = self.uninstall_windows_feature(o["feature"], remove=remove)
                restart = restart or r["RestartNeeded"] == "Yes"
            else:
                st = self.d["optional_features"].get(canon, "Disabled")
                if st in ("Disabled", "DisablePending", "DisabledWithPayloadRemoved") and not remove:
                    continue
                if o["restart"] == "Required" and st in ("Enabled",):
                    self.d["optional_features"][canon] = "DisablePending"
                    self._set_reboot_pending("DISM: %s disable pending" % canon)
                    restart = True
                else:
                    self.d["optional_features"][canon] = "DisabledWithPayloadRemoved" if remove else "Disabled"
        return self._image_object(restart)

    # ============================================================================================
    # Services
    # https://learn.microsoft.com/powershell/module/microsoft.powershell.management/get-service?view=powershell-5.1
    # https://learn.microsoft.com/powershell/module/microsoft.powershell.management/new-service?view=powershell-5.1
    # https://learn.microsoft.com/powershell/module/microsoft.powershell.management/set-service?view=powershell-5.1
    # https://learn.microsoft.com/powershell/module/microsoft.powershell.management/start-service?view=powershell-5.1
    # https://learn.microsoft.com/windows-server/administration/windows-commands/sc-delete , sc-failure, sc-config
    # Messages: PowerShell's ServiceResources.resx ("Service '{1} ({0})' cannot be started due to the
    # following error: {2}", {2} being ServiceController.Start's InvalidOperationException message).
    # ============================================================================================

    START_TYPES = {"automatic": "auto", "manual": "manual", "disabled": "disabled"}
    START_MODE_TO_TYPE = {"auto": "Automatic", "delayed": "Automatic", "manual": "Manual", "disabled": "Disabled"}
    START_MODE_TO_WMI = {"auto": "Auto", "delayed": "Auto", "manual": "Manual", "disabled": "Disabled"}

    def _find_service(self, name: str) -> dict | None:
        return self.d["services"].get(str(name or "").lower())

    def _not_found(self, name: str, cmd: str, cmd_type: str) -> CmdletError:
        return CmdletError("Cannot find any service with service name '%s'." % name, SVC_EXC, "ObjectNotFound",
                           "NoServiceFoundForGivenName," + PSC + cmd_type, cmd, name)

    def _service_obj(self, s: dict) -> dict:
        """System.ServiceProcess.ServiceController as Windows PowerShell 5.1 shows it (StartType has no
        AutomaticDelayedStart in 5.1: a delayed service is Automatic)."""
        deps = [self.d["services"][x.lower()]["name"] for x in s.get("depends_on", [])
                if x.lower() in self.d["services"]]
        dependents = [o["name"] for o in self.d["services"].values()
                      if s["name"].lower() in [x.lower() for x in o.get("depends_on", [])]]
        return {"Name": s["name"], "ServiceName": s["name"], "DisplayName": s["display_name"], "Status": s["status"],
                "StartType": self.START_MODE_TO_TYPE.get(s["start_mode"], "Manual"),
                "ServiceType": s.get("service_type", "Win32OwnProcess"), "ServicesDependedOn": deps,
                "RequiredServices": deps, "DependentServices": dependents, "CanStop": s["status"] == "Running",
                "CanPauseAndContinue": False, "MachineName": "."}

    def _win32_service_obj(self, s: dict) -> dict:
        # Win32_Service (https://learn.microsoft.com/windows/win32/cimwin32prov/win32-service)
        return {"Name": s["name"], "DisplayName": s["display_name"], "PathName": s["binary_path_name"],
                "StartMode": self.START_MODE_TO_WMI.get(s["start_mode"], "Manual"),
                "DelayedAutoStart": s["start_mode"] == "delayed", "State": s["status"], "Started":
                s["status"] == "Running", "StartName": s.get("start_name") or "LocalSystem",
                "Description": s.get("description") or None, "ProcessId": s.get("pid", 0) if s["status"] == "Running"
                else 0, "ServiceType": "Own Process" if s.get("service_type") != "Win32ShareProcess"
                else "Share Process", "ExitCode": s.get("exit_code", 0)}

    def get_service(self, name=None) -> list[dict]:
        names = [str(n) for n in as_list(name)]
        if not names:
            return [self._service_obj(s) for s in sorted(self.d["services"].values(), key=lambda x: x["name"].lower())]
        out = []
        for n in names:
            if has_wildcard(n):
                out.extend(self._service_obj(s) for s in self.d["services"].values() if wild_match(n, s["name"]))
            else:
                s = self._find_service(n)
                if s is None:
                    raise self._not_found(n, "Get-Service", "GetServiceCommand")
                out.append(self._service_obj(s))
        return out

    def _start_type(self, value, cmd: str, cmd_type: str) -> str:
        v = str(value)
        mode = self.START_TYPES.get(v.lower())
        if mode is None:
            # Windows PowerShell 5.1 binds -StartupType to System.ServiceProcess.ServiceStartMode
            # (AutomaticDelayedStart exists only from PowerShell 6).
            raise enum_binding("StartupType", v, "System.ServiceProcess.ServiceStartMode",
                               ["Boot", "System", "Automatic", "Manual", "Disabled"], cmd, PSC + cmd_type)
        return mode

    def new_service(self, name, binary_path_name, display_name=None, description=None, startup_type="Automatic",
                    depends_on=None, credential=None) -> dict:
        cmd, cmd_type = "New-Service", "NewServiceCommand"
        if not name:
            raise parameter_null("Name", cmd, PSC + cmd_type)
        if not binary_path_name:
            raise parameter_null("BinaryPathName", cmd, PSC + cmd_type)
        mode = self._start_type(startup_type or "Automatic", cmd, cmd_type)
        disp = display_name or name
        if self._find_service(name) is not None:
            raise CmdletError("Service '%s (%s)' cannot be created due to the following error: The specified service "
                              "already exists" % (disp, name), SVC_EXC, "PermissionDenied",
                              "CouldNotNewService," + PSC + cmd_type, cmd, name)
        s = {"name": str(name), "display_name": disp, "binary_path_name": str(binary_path_name), "start_mode": mode,
             "status": "Stopped", "depends_on": [str(x) for x in as_list(depends_on)],
             "description": description or "", "start_name": (credential or "LocalSystem"),
             "service_type": "Win32OwnProcess", "failure_actions": None, "marked_for_delete": False}
        self.d["services"][str(name).lower()] = s
        return self._service_obj(s)

    def set_service(self, name, display_name=None, description=None, startup_type=None, status=None) -> dict:
        cmd, cmd_type = "Set-Service", "SetServiceCommand"
        s = self._find_service(name)
        if s is None:
            # Set-Service constructs a ServiceController and reads DisplayName (Service.cs):
            # InvalidOperationException, ErrorRecord id "InvalidOperationException", ObjectNotFound.
            raise CmdletError("Service %s was not found on computer '.'." % name, "System.InvalidOperationException",
                              "ObjectNotFound", "InvalidOperationException," + PSC + cmd_type, cmd, name)
        if startup_type is not None:
            s["start_mode"] = self._start_type(startup_type, cmd, cmd_type)
        if display_name is not None:
            s["display_name"] = display_name
        if description is not None:
            s["description"] = description
        if status is not None:
            st = str(status).lower()
            if st == "running":
                self._start(s, cmd, cmd_type)
            elif st == "stopped":
                self._stop(s, False, cmd, cmd_type)
            elif st == "paused":
                raise CmdletError("Service '%s (%s)' cannot be suspended because the service does not support being "
                                  "suspended or resumed." % (s["display_name"], s["name"]), SVC_EXC, "CloseError",
                                  "CouldNotSuspendServiceNotSupported," + PSC + cmd_type, cmd)
            else:
                raise enum_binding("Status", str(status), "System.ServiceProcess.ServiceControllerStatus",
                                   ["Stopped", "StartPending", "StopPending", "Running", "ContinuePending",
                                    "PausePending", "Paused"], cmd, PSC + cmd_type)
        return self._service_obj(s)

    def resolve_binary(self, command_line: str) -> str | None:
        """The executable a service's ImagePath (or a task's Execute) names, as CreateProcess finds it:
        a quoted path, else the shortest space-separated prefix that exists (then the first token)."""
        cl = self.expand_env(str(command_line or "").strip())
        if not cl:
            return None
        if cl.startswith('"'):
            end = cl.find('"', 1)
            return cl[1:end] if end > 0 else cl[1:]
        toks = cl.split(" ")
        for i in range(1, len(toks) + 1):
            cand = " ".join(toks[:i])
            for c in (cand, cand + ".exe"):
                if self.fs.is_file(c):
                    return c
        return toks[0]

    def _binary_exists(self, path: str | None) -> bool:
        if not path:
            return False
        if "\\" not in path and "/" not in path:
            return self.which(path) is not None
        return self.fs.is_file(path) or (not path.lower().endswith(".exe") and self.fs.is_file(path + ".exe"))

    def _start_failure(self, s: dict, cmd: str, cmd_type: str, why: str) -> CmdletError:
        s["last_start_error"] = why
        self._scm_start_failed(s, why)
        # ServiceCommandException <- InvalidOperationException (ServiceController.Start) <- Win32Exception.
        text = self.SCM_ERRORS.get(str(why).split(" ", 1)[0], str(why)).rstrip(".")
        inner = ["Cannot start service %s on computer '.'." % s["name"], text]
        return CmdletError("Service '%s (%s)' cannot be started due to the following error: Cannot start service %s "
                           "on computer '.'." % (s["display_name"], s["name"], s["name"]), SVC_EXC, "OpenError",
                           "CouldNotStartService," + PSC + cmd_type, cmd, s["name"], inner=inner)

    def _start(self, s: dict, cmd: str, cmd_type: str, seen=None) -> None:
        seen = seen or set()
        if s["status"] == "Running":
            return
        if s["name"].lower() in seen:
            raise self._start_failure(s, cmd, cmd_type, "1059 circular service dependency")
        seen.add(s["name"].lower())
        if s.get("marked_for_delete"):
            raise self._start_failure(s, cmd, cmd_type, "1072 marked for deletion")
        if s["start_mode"] == "disabled":
            raise self._start_failure(s, cmd, cmd_type, "1058 service is disabled")
        for dep in s.get("depends_on", []):
            ds = self._find_service(dep)
            if ds is None:
                if dep.lower() in ("http", "tcpip", "afd", "nsi"):  # drivers, not modelled: always running
                    continue
                raise self._start_failure(s, cmd, cmd_type, "1075 dependency %s does not exist" % dep)
            try:
                self._start(ds, cmd, cmd_type, seen)
            except CmdletError:
                raise self._start_failure(s, cmd, cmd_type, "1068 dependency %s failed to start" % dep)
        exe = self.resolve_binary(s["binary_path_name"])
        if not self._binary_exists(exe):
            raise self._start_failure(s, cmd, cmd_type, "2 The system cannot find the file specified (%s)" % exe)
        rt = self.host.runtime  # stand-in programs (sim/standins.py) decide whether they start
        why = rt.service_can_start(self, s, exe) if rt is not None else None
        if why:
            raise self._start_failure(s, cmd, cmd_type, why)
        s["status"] = "Running"
        s["pid"] = 1000 + (abs(hash(s["name"] + str(time.time()))) % 8000) * 4
        s["last_start_error"] = None
        s["started_at"] = time.time()
        if rt is not None:
            rt.service_started(self, s, exe)

    def _stop(self, s: dict, force: bool, cmd: str, cmd_type: str) -> None:
        if s["status"] != "Running":
            self._maybe_delete(s)
            return
        dependents = [o for o in self.d["services"].values() if o["status"] == "Running" and
                      s["name"].lower() in [x.lower() for x in o.get("depends_on", [])]]
        if dependents and not force:
            raise CmdletError("Cannot stop service '%s (%s)' because it has dependent services. It can only be stopped "
                              "if the Force flag is set." % (s["display_name"], s["name"]), SVC_EXC,
                              "InvalidOperation", "ServiceHasDependentServices," + PSC + cmd_type, cmd, s["name"])
        for o in dependents:
            self._stop(o, True, cmd, cmd_type)
        s["status"] = "Stopped"
        s.pop("pid", None)
        if self.host.runtime is not None:
            self.host.runtime.service_stopped(self, s)
        self._maybe_delete(s)

    def _maybe_delete(self, s: dict) -> None:
        if s.get("marked_for_delete") and s["status"] != "Running":
            self.d["services"].pop(s["name"].lower(), None)

    def start_service(self, name) -> None:
        cmd, cmd_type = "Start-Service", "StartServiceCommand"
        for n in as_list(name):
            s = self._find_service(n)
            if s is None:
                raise self._not_found(n, cmd, cmd_type)
            self._start(s, cmd, cmd_type)

    def stop_service(self, name, force=False) -> None:
        cmd, cmd_type = "Stop-Service", "StopServiceCommand"
        for n in as_list(name):
            s = self._find_service(n)
            if s is None:
                raise self._not_found(n, cmd, cmd_type)
            self._stop(s, force, cmd, cmd_type)

    def restart_service(self, name, force=False) -> None:
        cmd, cmd_type = "Restart-Service", "RestartServiceCommand"
        for n in as_list(name):
            s = self._find_service(n)
            if s is None:
                raise self._not_found(n, cmd, cmd_type)
            self._stop(s, force, cmd, cmd_type)
            if self._find_service(n) is not None:
                self._start(s, cmd, cmd_type)

    # -- the service's registry key and Win32_Service.Change ------------------------------------------------
    # HKLM\SYSTEM\CurrentControlSet\Services\<name>: the SCM keeps the failure configuration there
    # (ChangeServiceConfig2 SERVICE_CONFIG_FAILURE_ACTIONS): FailureActions is a REG_BINARY
    # SERVICE_FAILURE_ACTIONS as the SCM serialises it - dwResetPeriod, two zero pointer slots, cActions, a
    # pointer slot (the offset 0x14), then cActions SC_ACTION {Type, Delay} pairs, all little-endian DWORDs
    # (https://learn.microsoft.com/windows/win32/api/winsvc/ns-winsvc-service_failure_actionsw); the command
    # and the reboot message are the REG_SZ values FailureCommand and RebootMessage;
    # FailureActionsOnNonCrashFailures is a REG_DWORD.
    SC_ACTION_TYPES = {"none": 0, "restart": 1, "reboot": 2, "run": 3}

    def get_item_property_service_key(self, name) -> dict:
        r"""Get-ItemProperty -LiteralPath HKLM:\SYSTEM\CurrentControlSet\Services\<name> (the values above;
        FailureActions as bytes, absent ones missing)."""
        s = self._find_service(name)
        if s is None:
            raise path_not_found("HKLM:\\SYSTEM\\CurrentControlSet\\Services\\%s" % name, "Get-ItemProperty",
                                 PSC + "GetItemPropertyCommand")
        out = {"ImagePath": s["binary_path_name"], "DisplayName": s["display_name"],
               "ObjectName": s.get("start_name") or "LocalSystem"}
        fa = s.get("failure_actions") or {}
        if fa.get("actions") is not None or fa.get("reset_period") is not None:
            acts = fa.get("actions") or []
            reset = fa.get("reset_period")
            data = struct.pack("<5I", 0xFFFFFFFF if reset is None else int(reset) & 0xFFFFFFFF, 0, 0, len(acts),
                               0x14 if acts else 0)
            for a in acts:
                data += struct.pack("<2I", self.SC_ACTION_TYPES.get(a.get("type"), 0), int(a.get("delay_ms") or 0))
            out["FailureActions"] = data
        if fa.get("command"):
            out["FailureCommand"] = fa["command"]
        if fa.get("reboot_message"):
            out["RebootMessage"] = fa["reboot_message"]
        if s.get("failure_actions_on_non_crash") is not None:
            out["FailureActionsOnNonCrashFailures"] = 1 if s["failure_actions_on_non_crash"] else 0
        return out

    def invoke_cim_method_win32_service_change(self, name, start_name=None, start_password=None) -> dict:
        """Invoke-CimMethod -MethodName Change on a Win32_Service
        (https://learn.microsoft.com/windows/win32/cimwin32prov/change-method-in-class-win32-service): a null
        parameter leaves that setting alone, so StartPassword alone changes only the password. Returns
        {"ReturnValue": n}: 0 success, 16 marked for deletion, 21 invalid parameter (a password for
        LocalSystem), 22 invalid service account (an empty account name). Accounts themselves are not
        modelled: any other name is accepted. The password is kept only as a SHA-256 and a change counter."""
        s = self._find_service(name)
        if s is None:
            return {"ReturnValue": 5}
        if s.get("marked_for_delete"):
            return {"ReturnValue": 16}
        if start_name is not None and not str(start_name).strip():
            return {"ReturnValue": 22}
        account = str(start_name) if start_name is not None else (s.get("start_name") or "LocalSystem")
        if account.lower() == "localsystem" and start_password:
            return {"ReturnValue": 21}
        if start_name is not None:
            s["start_name"] = account
        if start_password is not None:
            s["password_sha256"] = hashlib.sha256(str(start_password).encode("utf-8")).hexdigest() \
                if start_password else None
            s["password_changes"] = int(s.get("password_changes") or 0) + 1
        return {"ReturnValue": 0}

    # -- sc.exe (https://learn.microsoft.com/windows-server/administration/windows-commands/sc-config etc.) ---

    SC_NOT_FOUND = "[SC] OpenService FAILED 1060:\r\n\r\nThe specified service does not exist as an installed service.\r\n\r\n"

    @staticmethod
    def _sc_options(tokens: list[str]) -> dict | None:
        """sc.exe's `option= value` pairs (the space after '=' is required); None when malformed."""
        opts = {}
        i = 0
        while i < len(tokens):
            t = tokens[i]
            if not t.endswith("=") or i + 1 >= len(tokens):
                return None
            opts[t[:-1].lower()] = tokens[i + 1]
            i += 2
        return opts

    def sc_exe(self, argv: list[str]) -> tuple[int, str]:
        """Run `sc.exe <argv>`; returns (exit code, stdout)."""
        argv = [str(a) for a in argv]
        if argv and argv[0].startswith("\\\\"):
            argv = argv[1:]  # \\server: this host
        if len(argv) < 2:
            return 1639, "[SC] invalid command line\r\n"
        verb, name, rest = argv[0].lower(), argv[1], argv[2:]
        s = self._find_service(name)
        if verb == "delete":
            if s is None:
                return 1060, self.SC_NOT_FOUND
            if s.get("marked_for_delete"):
                return 1072, "[SC] DeleteService FAILED 1072:\r\n\r\nThe specified service has been marked for deletion.\r\n\r\n"
            s["marked_for_delete"] = True
            self._maybe_delete(s)
            return 0, "[SC] DeleteService SUCCESS\r\n"
        if verb == "failure":
            opts = self._sc_options(rest)
            if opts is None or not opts or ("reset" in opts) != ("actions" in opts):
                return 1639, ("DESCRIPTION:\r\n        Changes the actions upon failure\r\nUSAGE:\r\n        sc <server> "
                              "failure [service name] <option1> <option2>...\r\n")
            if s is None:
                return 1060, self.SC_NOT_FOUND
            fa = dict(s.get("failure_actions") or {})
            if "reset" in opts:
                r = opts["reset"]
                fa["reset_period"] = None if r.upper() == "INFINITE" else int(r) if r.isdigit() else r
                acts = []
                parts = opts["actions"].split("/")
                for j in range(0, len(parts) - 1, 2):
                    kind = parts[j].strip('"').lower() or "none"
                    if kind not in ("restart", "run", "reboot", "none"):
                        return 87, "[SC] ChangeServiceConfig2 FAILED 87:\r\n\r\nThe parameter is incorrect.\r\n\r\n"
                    acts.append({"type": kind, "delay_ms": int(parts[j + 1]) if parts[j + 1].isdigit() else 0})
                fa["actions"] = acts
            if "command" in opts:
                fa["command"] = opts["command"]
            if "reboot" in opts:
                fa["reboot_message"] = opts["reboot"]
            s["failure_actions"] = fa
            return 0, "[SC] ChangeServiceConfig2 SUCCESS\r\n"
        if verb == "config":
            opts = self._sc_options(rest)
            if opts is None or not opts:
                return 1639, ("DESCRIPTION:\r\n        Modifies a service entry in the registry and Service Database.\r\n"
                              "USAGE:\r\n        sc <server> config [service name] <option1> <option2>...\r\n")
            if s is None:
                return 1060, self.SC_NOT_FOUND
            if "start" in opts:
                m = {"auto": "auto", "demand": "manual", "disabled": "disabled", "delayed-auto": "delayed"}.get(
                    opts["start"].lower())
                if m is None:
                    return 87, "[SC] ChangeServiceConfig FAILED 87:\r\n\r\nThe parameter is incorrect.\r\n\r\n"
                s["start_mode"] = m
            if "binpath" in opts:
                s["binary_path_name"] = opts["binpath"]
            if "displayname" in opts:
                s["display_name"] = opts["displayname"]
            if "depend" in opts:
                s["depends_on"] = [x for x in opts["depend"].split("/") if x]
            if "obj" in opts:
                s["start_name"] = opts["obj"]
            return 0, "[SC] ChangeServiceConfig SUCCESS\r\n"
        if verb == "failureflag":
            # sc failureflag <name> <0|1>: SERVICE_CONFIG_FAILURE_ACTIONS_FLAG (actions on non-crash failures)
            if len(rest) != 1 or rest[0] not in ("0", "1"):
                return 1639, ("DESCRIPTION:\r\n        Changes the failure actions flag setting of a service.\r\n"
                              "USAGE:\r\n        sc <server> failureflag [service name] [flag]\r\n")
            if s is None:
                return 1060, self.SC_NOT_FOUND
            s["failure_actions_on_non_crash"] = rest[0] == "1"
            return 0, "[SC] ChangeServiceConfig2 SUCCESS\r\n"
        if verb == "qfailure":
            if s is None:
                return 1060, self.SC_NOT_FOUND
            return 0, "[SC] QueryServiceConfig2 SUCCESS\r\n\r\nSERVICE_NAME: %s\r\n" % s["name"]
        return 1639, "[SC] unknown command %s\r\n" % argv[0]

    # ============================================================================================
    # Files (FileSystem provider, System.IO)
    # https://learn.microsoft.com/powershell/module/microsoft.powershell.management/test-path?view=powershell-5.1
    # https://learn.microsoft.com/powershell/module/microsoft.powershell.management/get-item?view=powershell-5.1
    # https://learn.microsoft.com/powershell/module/microsoft.powershell.utility/get-filehash?view=powershell-5.1
    # https://learn.microsoft.com/dotnet/api/system.io.fileattributes
    # ============================================================================================

    def test_path(self, path, path_type=None) -> bool:
        if path is None or str(path) == "":
            # Test-Path -Path '' : ParameterBindingValidationException (empty string not allowed)
            raise CmdletError("Cannot bind argument to parameter 'Path' because it is an empty string.",
                              "System.Management.Automation.ParameterBindingValidationException", "InvalidData",
                              "ParameterArgumentValidationErrorEmptyStringNotAllowed," + PSC + "TestPathCommand",
                              "Test-Path")
        if is_registry_path(path):
            return self.registry.test_path(path)
        try:
            info = self.fs.info(str(path))
        except FsError:
            return False
        if info is None:
            return False
        pt = (path_type or "Any").lower()
        if pt == "leaf":
            return not info["is_dir"]
        if pt == "container":
            return info["is_dir"]
        return True

    def _item_obj(self, info: dict) -> dict:
        attrs = attr_string(info["attributes"])
        mode = "".join([
            "d" if info["is_dir"] else "-", "a" if "Archive" in attrs else "-", "r" if "ReadOnly" in attrs else "-",
            "h" if "Hidden" in attrs else "-", "s" if "System" in attrs else "-", "-"])
        o = {"FullName": info["full_name"], "Name": info["name"], "Extension": info["extension"],
             "Attributes": attrs, "Mode": mode, "PSIsContainer": info["is_dir"],
             "LastWriteTimeUtc": iso(info["last_write_time"]), "CreationTimeUtc": iso(info["creation_time"]),
             "LastAccessTimeUtc": iso(info["last_access_time"]),
             # the same instants as Unix seconds (what scripts compute with New-TimeSpan from the epoch)
             "LastWriteTimeUnix": info["last_write_time"], "CreationTimeUnix": info["creation_time"],
             "LastAccessTimeUnix": info["last_access_time"]}
        if not info["is_dir"]:
            o["Length"] = info["length"]
            o["DirectoryName"] = info["full_name"].rsplit("\\", 1)[0]
        return o

    def _fs_error(self, e: FsError, cmd: str, cmd_type: str, path: str) -> CmdletError:
        if e.kind == "not_found":
            return path_not_found(path, cmd, PSC + cmd_type)
        if e.kind == "illegal":
            return CmdletError("Illegal characters in path.", "System.ArgumentException", "InvalidArgument",
                               "ItemExistsArgumentError," + PSC + cmd_type, cmd, path)
        if e.kind == "dir_not_found":
            return CmdletError(str(e), "System.IO.DirectoryNotFoundException", "WriteError",
                               "NewItemIOError," + PSC + cmd_type, cmd, path)
        if e.kind == "is_dir":
            return CmdletError(str(e), "System.UnauthorizedAccessException", "PermissionDenied",
                               "ItemExistsUnauthorizedAccessError," + PSC + cmd_type, cmd, path)
        return CmdletError(str(e), "System.IO.IOException", "WriteError", "%s,%s%s" % (
            "NewItemIOError", PSC, cmd_type), cmd, path)

    def get_item(self, path) -> dict:
        if is_registry_path(path):
            return self.registry.get_item(path)
        try:
            info = self.fs.info(str(path))
        except FsError as e:
            raise self._fs_error(e, "Get-Item", "GetItemCommand", str(path))
        if info is None:
            raise path_not_found(str(path), "Get-Item", PSC + "GetItemCommand")
        return self._item_obj(info)

    def get_child_item(self, path) -> list[dict]:
        item = self.get_item(path)
        if not item["PSIsContainer"]:
            return [item]
        return [self.get_item(c) for c in self.fs.children(str(path))]

    def new_item(self, path, item_type="File", value=None, force=False) -> dict:
        cmd, cmd_type = "New-Item", "NewItemCommand"
        p = str(path)
        if is_registry_path(p):
            return self.registry.new_item(p, force=force)
        kind = str(item_type or "File").lower()
        try:
            exists = self.fs.exists(p)
            if kind == "directory":
                if exists and not force:
                    disp = self.fs.display(self.fs.parts(p))
                    raise CmdletError("An item with the specified name %s already exists." % disp,
                                      "System.IO.IOException", "ResourceExists", "DirectoryExist," + PSC + cmd_type,
                                      cmd, p)
                if exists and not self.fs.is_dir(p):
                    raise CmdletError("An item with the specified name %s already exists." % p,
                                      "System.IO.IOException", "ResourceExists", "DirectoryExist," + PSC + cmd_type,
                                      cmd, p)
                self.fs.mkdir(p)
            elif kind == "file":
                if exists and not force:
                    disp = self.fs.display(self.fs.parts(p))
                    raise CmdletError("The file '%s' already exists." % disp, "System.IO.IOException", "WriteError",
                                      "NewItemIOError," + PSC + cmd_type, cmd, p)
                data = b"" if value is None else (value if isinstance(value, bytes) else str(value).encode("utf-8"))
                self.fs.write(p, data, make_parents=bool(force))
            else:
                raise CmdletError("The type is not a known type for the file system. Only \"file\" and \"directory\" "
                                  "can be created.", "System.IO.IOException", "WriteError",
                                  "NewItemIOError," + PSC + cmd_type, cmd, p)
        except FsError as e:
            raise self._fs_error(e, cmd, cmd_type, p)
        return self.get_item(p)

    def remove_item(self, path, recurse=False, force=False) -> None:
        cmd, cmd_type = "Remove-Item", "RemoveItemCommand"
        p = str(path)
        if is_registry_path(p):
            return self.registry.remove_item(p, recurse=recurse)
        try:
            info = self.fs.info(p)
            if info is None:
                raise path_not_found(p, cmd, PSC + cmd_type)
            if "ReadOnly" in attr_string(info["attributes"]) and not force and not info["is_dir"]:
                raise CmdletError("Cannot remove item %s: You do not have sufficient access rights to perform this "
                                  "operation." % info["full_name"], "System.IO.IOException", "PermissionDenied",
                                  "RemoveFileSystemItemUnAuthorizedAccess," + PSC + cmd_type, cmd, p)
            if info["is_dir"] and self.fs.children(p) and not recurse:
                # Remove-Item would ask for confirmation; under powershell.exe -NonInteractive it cannot.
                raise CmdletError("Windows PowerShell is in NonInteractive mode. Read and Prompt functionality is not "
                                  "available.", "System.Management.Automation.PSInvalidOperationException",
                                  "InvalidOperation", "InvalidOperation," + PSC + cmd_type, cmd, p)
            self.fs.remove(p, recurse=True)
        except FsError as e:
            raise self._fs_error(e, cmd, cmd_type, p)

    def get_content_bytes(self, path) -> bytes:
        try:
            return self.fs.read(str(path))
        except FsError as e:
            if e.kind == "not_found":
                raise path_not_found(str(path), "Get-Content", PSC + "GetContentCommand")
            raise self._fs_error(e, "Get-Content", "GetContentCommand", str(path))

    ENCODINGS = {"default": ("cp1252", b""), "ascii": ("ascii", b""), "utf8": ("utf-8", b"\xef\xbb\xbf"),
                 "unicode": ("utf-16-le", b"\xff\xfe"), "bigendianunicode": ("utf-16-be", b"\xfe\xff"),
                 "utf32": ("utf-32-le", b"\xff\xfe\x00\x00"), "oem": ("cp437", b"")}

    def set_content(self, path, value, encoding="Default", no_newline=False) -> None:
        """Set-Content (Windows PowerShell 5.1): -Encoding Default is the ANSI code page, UTF8 writes a BOM;
        each value is followed by CRLF unless -NoNewline."""
        cmd, cmd_type = "Set-Content", "SetContentCommand"
        p = str(path)
        if isinstance(value, (bytes, bytearray)) or str(encoding).lower() == "byte":
            data = bytes(value) if isinstance(value, (bytes, bytearray)) else bytes(as_list(value))
        else:
            codec, bom = self.ENCODINGS.get(str(encoding).lower(), ("cp1252", b""))
            lines = [str(v) for v in as_list(value)]
            text = "".join(lines) if no_newline else "".join(x + "\r\n" for x in lines)
            data = bom + text.encode(codec, errors="replace")
        info = self.fs.info(p) if self.fs.exists(p) else None
        if info and "ReadOnly" in attr_string(info["attributes"]):
            raise CmdletError("Access to the path '%s' is denied." % info["full_name"],
                              "System.UnauthorizedAccessException", "PermissionDenied",
                              "GetContentWriterUnauthorizedAccessError," + PSC + cmd_type, cmd, p)
        try:
            self.fs.write(p, data)
        except FsError as e:
            if e.kind == "dir_not_found":
                raise CmdletError(str(e), "System.IO.DirectoryNotFoundException", "ObjectNotFound",
                                  "GetContentWriterDirectoryNotFoundError," + PSC + cmd_type, cmd, p)
            raise self._fs_error(e, cmd, cmd_type, p)

    def copy_item(self, path, destination, force=False) -> None:
        data = self.get_content_bytes(path)
        try:
            if self.fs.is_dir(str(destination)):
                destination = str(destination).rstrip("\\") + "\\" + self.fs.parts(str(path))[-1]
            self.fs.write(str(destination), data)
        except FsError as e:
            raise self._fs_error(e, "Copy-Item", "CopyItemCommand", str(destination))

    def move_item(self, path, destination, force=False) -> None:
        try:
            self.fs.move(str(path), str(destination), overwrite=bool(force))
        except FsError as e:
            raise self._fs_error(e, "Move-Item", "MoveItemCommand", str(path))

    def set_attributes(self, path, attributes) -> None:
        """`(Get-Item $p).Attributes = 'ReadOnly, Archive'` (or Set-ItemProperty -Name Attributes)."""
        names = [a.strip() for a in (attributes.split(",") if isinstance(attributes, str) else as_list(attributes))]
        valid = {a.lower(): a for a in FILE_ATTRIBUTE_ORDER}
        out = []
        for a in names:
            if not a:
                continue
            if a.lower() not in valid:
                raise CmdletError("Cannot convert value \"%s\" to type \"System.IO.FileAttributes\"." % a,
                                  "System.Management.Automation.PSInvalidCastException", "InvalidArgument",
                                  "RuntimeException", "Attributes")
            out.append(valid[a.lower()])
        info = self.fs.info(str(path))
        if info is None:
            raise path_not_found(str(path), "Get-Item", PSC + "GetItemCommand")
        if info["is_dir"] and "Directory" not in out:
            out.append("Directory")
        out = [a for a in out if a != "Normal"] or (["Directory"] if info["is_dir"] else ["Normal"])
        self.fs.set_attributes(str(path), out)

    HASHES = {"sha1": hashlib.sha1, "sha256": hashlib.sha256, "sha384": hashlib.sha384, "sha512": hashlib.sha512,
              "md5": hashlib.md5}

    def get_file_hash(self, path, algorithm="SHA256") -> dict:
        alg = str(algorithm or "SHA256").upper()
        fn = self.HASHES.get(alg.lower())
        if fn is None:
            raise CmdletError("Cannot validate argument on parameter 'Algorithm'. The argument \"%s\" does not belong "
                              "to the set \"SHA1,SHA256,SHA384,SHA512,MACTripleDES,MD5,RIPEMD160\" specified by the "
                              "ValidateSet attribute. Supply an argument that is in the set and then try the command "
                              "again." % algorithm, "System.Management.Automation.ParameterBindingValidationException",
                              "InvalidData", "ParameterArgumentValidationError,Get-FileHash", "Get-FileHash")
        info = self.fs.info(str(path)) if not isinstance(path, type(None)) else None
        if info is None or info["is_dir"]:
            # best recollection: Get-FileHash (a 5.1 script function) resolves -Path first
            raise path_not_found(str(path), "Get-FileHash", "Get-FileHash")
        data = self.fs.read(str(path))
        return {"Algorithm": alg, "Hash": fn(data).hexdigest().upper(), "Path": info["full_name"]}

    # ============================================================================================
    # Microsoft Defender preferences
    # https://learn.microsoft.com/powershell/module/defender/get-mppreference
    # https://learn.microsoft.com/powershell/module/defender/add-mppreference
    # https://learn.microsoft.com/powershell/module/defender/remove-mppreference
    # ============================================================================================

    def _defender_ready(self, cmd: str) -> None:
        if self.d["features"].get("Windows-Defender") != "Installed":
            # best recollection: the MSFT_MpPreference provider fails with 0x800106ba when Defender is gone
            raise CmdletError("Operation failed with the following error: 0x800106ba", CIM_EXC, "NotSpecified",
                              "HRESULT 0x800106ba,%s" % cmd, cmd)

    def get_mp_preference(self) -> dict:
        self._defender_ready("Get-MpPreference")
        dfd = self.d["defender"]
        # Empty exclusion lists read back as $null.
        return {"ExclusionPath": list(dfd["exclusion_path"]) or None,
                "ExclusionProcess": list(dfd["exclusion_process"]) or None,
                "ExclusionExtension": list(dfd["exclusion_extension"]) or None,
                "DisableRealtimeMonitoring": bool(dfd.get("disable_realtime_monitoring", False))}

    def _mp_change(self, cmd: str, add: bool, exclusion_path=None, exclusion_process=None,
                   exclusion_extension=None) -> None:
        self._defender_ready(cmd)
        dfd = self.d["defender"]
        for key, vals in (("exclusion_path", exclusion_path), ("exclusion_process", exclusion_process),
                          ("exclusion_extension", exclusion_extension)):
            cur = dfd[key]
            for v in as_list(vals):
                v = str(v)
                present = [c for c in cur if c.lower() == v.lower()]
                if add and not present:
                    cur.append(v)
                if not add:
                    for c in present:
                        cur.remove(c)

    def add_mp_preference(self, exclusion_path=None, exclusion_process=None, exclusion_extension=None) -> None:
        self._mp_change("Add-MpPreference", True, exclusion_path, exclusion_process, exclusion_extension)

    def remove_mp_preference(self, exclusion_path=None, exclusion_process=None, exclusion_extension=None) -> None:
        self._mp_change("Remove-MpPreference", False, exclusion_path, exclusion_process, exclusion_extension)

    # ============================================================================================
    # Firewall rules
    # https://learn.microsoft.com/powershell/module/netsecurity/new-netfirewallrule
    # https://learn.microsoft.com/powershell/module/netsecurity/get-netfirewallrule (+ Get-NetFirewallPortFilter,
    # Get-NetFirewallApplicationFilter: a rule's filters are one-to-one with it, merged into one object here)
    # ============================================================================================

    NET_ENUMS = {
        "Direction": ["Inbound", "Outbound"],
        "Action": ["NotConfigured", "Allow", "Block"],
        "Enabled": ["True", "False"],
    }
    PROFILES = ["Any", "Domain", "Private", "Public", "NotApplicable"]

    def _rule_obj(self, r: dict) -> dict:
        return {"Name": r["name"], "ID": r["name"], "InstanceID": r["name"], "DisplayName": r["display_name"],
                "Description": r.get("description", ""), "DisplayGroup": r.get("display_group") or None,
                "Group": r.get("group") or r.get("display_group") or None,
                "Enabled": "True" if r["enabled"] else "False", "Profile": r["profile"], "Direction": r["direction"],
                "Action": r["action"], "EdgeTraversalPolicy": "Block", "PrimaryStatus": "OK",
                "Status": "The rule was parsed successfully from the store. (65536)", "EnforcementStatus": "NotApplicable",
                "PolicyStoreSource": "PersistentStore", "PolicyStoreSourceType": "Local",
                # port filter / application filter (lists, even for one value)
                "Protocol": r["protocol"], "LocalPort": list(r["local_port"]), "RemotePort": list(r["remote_port"]),
                "Program": r["program"],
                # address filter (Get-NetFirewallAddressFilter) and service filter (Get-NetFirewallServiceFilter)
                "LocalAddress": list(r.get("local_address") or ["Any"]),
                "RemoteAddress": list(r.get("remote_address") or ["Any"]),
                "Service": r.get("service") or "Any"}

    @staticmethod
    def _addresses(value) -> list[str]:
        """-LocalAddress/-RemoteAddress as the address filter shows them afterwards: an IPv4 prefix in
        subnet-mask form ("10.0.0.0/24" reads back as "10.0.0.0/255.255.255.0"), a host prefix (/32, /128) as
        the bare address; keywords (LocalSubnet, DNS, DHCP, WINS, DefaultGateway, Internet, Intranet, ...),
        ranges and IPv6 prefixes as given. https://learn.microsoft.com/powershell/module/netsecurity/new-netfirewallrule
        (-LocalAddress) and Get-NetFirewallAddressFilter's output on Windows Server."""
        out = []
        for v in as_list(value):
            v = str(v).strip()
            if v.lower() == "any":
                return ["Any"]
            if "/" in v:
                addr, suffix = v.split("/", 1)
                try:
                    net = ipaddress.ip_network(v if suffix.isdigit() else "%s/%s" % (addr, suffix), strict=False)
                except ValueError:
                    out.append(v)
                    continue
                if net.prefixlen == net.max_prefixlen:
                    out.append(addr)
                elif net.version == 4:
                    out.append("%s/%s" % (addr, net.netmask))
                else:
                    out.append("%s/%d" % (addr, net.prefixlen))
            else:
                out.append(v)
        return out or ["Any"]

    def _net_enum(self, param: str, value, cmd: str) -> str:
        v = str(value)
        if isinstance(value, bool):
            v = "True" if value else "False"
        for e in self.NET_ENUMS[param]:
            if e.lower() == v.lower():
                return e
        raise enum_binding(param, v, "Microsoft.PowerShell.Cmdletization.GeneratedTypes.NetSecurity.%s" % param,
                           self.NET_ENUMS[param], cmd, cmd)

    def _profile(self, value, cmd: str) -> str:
        vals = [x.strip() for x in (value.split(",") if isinstance(value, str) else as_list(value))]
        out = []
        for v in vals:
            m = [p for p in self.PROFILES if p.lower() == v.lower()]
            if not m:
                raise enum_binding("Profile", v, "Microsoft.PowerShell.Cmdletization.GeneratedTypes.NetSecurity.Profile",
                                   self.PROFILES, cmd, cmd)
            out.append(m[0])
        if not out or "Any" in out:
            return "Any"
        return ", ".join(p for p in ["Domain", "Private", "Public", "NotApplicable"] if p in out)

    @staticmethod
    def _protocol(value) -> str:
        v = str(value if value is not None else "Any")
        known = {"tcp": "TCP", "udp": "UDP", "icmpv4": "ICMPv4", "icmpv6": "ICMPv6", "any": "Any", "6": "TCP",
                 "17": "UDP", "1": "ICMPv4", "58": "ICMPv6"}
        return known.get(v.lower(), v)

    def _check_ports(self, r: dict, cmd: str) -> None:
        ports = [p for p in r["local_port"] + r["remote_port"] if str(p).lower() != "any"]
        if ports and r["protocol"] not in ("TCP", "UDP"):
            # best recollection: the firewall API rejects ports without TCP/UDP with E_INVALIDARG
            raise CmdletError("The parameter is incorrect.", CIM_EXC, "InvalidArgument",
                              "Windows System Error 87,%s" % cmd, cmd)
        for p in ports:
            p = str(p)
            ok = re.fullmatch(r"\d{1,5}(-\d{1,5})?", p) and all(0 < int(x) < 65536 for x in p.split("-"))
            if not ok and p.lower() not in ("rpc", "rpcepmap", "rpc-epmap", "iphttps", "iphttpsin", "iphttpsout",
                                            "playtodiscovery", "teredo"):
                raise CmdletError("The port is invalid. When Protocol is TCP or UDP, individual ports or ranges are "
                                  "allowed. Also, the following keywords are allowed: RPC, RPCEPMap, Teredo, IPHTTPSIn, "
                                  "IPHTTPSOut, PlayToDiscovery.", CIM_EXC, "InvalidArgument",
                                  "Windows System Error 87,%s" % cmd, cmd)

    def _find_rules(self, name=None, display_name=None, cmd: str = "Get-NetFirewallRule") -> list[dict]:
        rules = self.d["firewall_rules"]
        if name is not None:
            out = []
            for n in as_list(name):
                hit = [r for r in rules.values() if (wild_match(n, r["name"]) if has_wildcard(n)
                                                     else r["name"].lower() == str(n).lower())]
                if not hit and not has_wildcard(n):
                    raise cim_not_found("MSFT_NetFirewallRule", "InstanceID", n, cmd)
                out.extend(hit)
            return out
        if display_name is not None:
            out = []
            for n in as_list(display_name):
                hit = [r for r in rules.values() if (wild_match(n, r["display_name"]) if has_wildcard(n)
                                                     else r["display_name"].lower() == str(n).lower())]
                if not hit and not has_wildcard(n):
                    raise cim_not_found("MSFT_NetFirewallRule", "DisplayName", n, cmd)
                out.extend(hit)
            return out
        return list(rules.values())

    def get_net_firewall_rule(self, name=None, display_name=None) -> list[dict]:
        return [self._rule_obj(r) for r in self._find_rules(name, display_name)]

    def new_net_firewall_rule(self, display_name, name=None, direction="Inbound", action="Allow", protocol=None,
                              local_port=None, remote_port=None, program=None, enabled="True", profile="Any",
                              description=None, group=None, local_address=None, remote_address=None,
                              service=None) -> dict:
        cmd = "New-NetFirewallRule"
        if not display_name:
            raise parameter_null("DisplayName", cmd)
        rname = str(name) if name else "{%s}" % str(uuid.uuid4())
        if any(k.lower() == rname.lower() for k in self.d["firewall_rules"]):
            raise cim_already_exists("Windows System Error 183", cmd)
        r = {"name": rname, "display_name": str(display_name), "description": description or "",
             "display_group": group or "", "group": group or "",
             "direction": self._net_enum("Direction", direction or "Inbound", cmd),
             "action": self._net_enum("Action", action or "Allow", cmd),
             "protocol": self._protocol(protocol), "local_port": [str(p) for p in as_list(local_port)] or ["Any"],
             "remote_port": [str(p) for p in as_list(remote_port)] or ["Any"], "program": program or "Any",
             "enabled": self._net_enum("Enabled", enabled if enabled is not None else "True", cmd) == "True",
             "profile": self._profile(profile if profile is not None else "Any", cmd),
             "local_address": self._addresses(local_address), "remote_address": self._addresses(remote_address),
             "service": str(service) if service else "Any"}
        self._check_ports(r, cmd)
        self.d["firewall_rules"][rname] = r
        return self._rule_obj(r)

    def set_net_firewall_rule(self, name=None, display_name=None, **changes) -> None:
        cmd = "Set-NetFirewallRule"
        rules = self._find_rules(name, display_name, cmd)
        for r in rules:
            new = dict(r)
            for k, v in changes.items():
                if v is None:
                    continue
                if k == "new_display_name":
                    new["display_name"] = str(v)
                elif k in ("direction", "action"):
                    new[k] = self._net_enum(k.capitalize(), v, cmd)
                elif k == "enabled":
                    new["enabled"] = self._net_enum("Enabled", v, cmd) == "True"
                elif k == "profile":
                    new["profile"] = self._profile(v, cmd)
                elif k == "protocol":
                    new["protocol"] = self._protocol(v)
                elif k in ("local_port", "remote_port"):
                    new[k] = [str(p) for p in as_list(v)] or ["Any"]
                elif k in ("program", "description", "service"):
                    new[k] = str(v)
                elif k in ("local_address", "remote_address"):
                    new[k] = self._addresses(v)
                elif k == "group":
                    # Set-NetFirewallRule has no -Group: scripts set the CIM instance's Group property and
                    # pass it back with -InputObject (the rule keeps its identity).
                    new["group"] = new["display_group"] = str(v)
                else:
                    raise CmdletError("A parameter cannot be found that matches parameter name '%s'." % k,
                                      "System.Management.Automation.ParameterBindingException", "InvalidArgument",
                                      "NamedParameterNotFound,%s" % cmd, cmd)
            self._check_ports(new, cmd)
            r.update(new)

    def remove_net_firewall_rule(self, name=None, display_name=None) -> None:
        for r in self._find_rules(name, display_name, "Remove-NetFirewallRule"):
            self.d["firewall_rules"].pop(r["name"], None)

    # ============================================================================================
    # Environment variables
    # https://learn.microsoft.com/dotnet/api/system.environment.setenvironmentvariable (.NET Framework 4.8:
    # Machine = HKLM\SYSTEM\CurrentControlSet\Control\Session Manager\Environment, User = HKCU\Environment;
    # an empty value deletes the variable; names are case-insensitive)
    # ============================================================================================

    @staticmethod
    def fresh_process_env(host: HostState) -> dict:
        """The environment a new powershell.exe starts with: machine, then user variables (Path is
        machine Path ; user Path), plus the per-process ones Windows sets."""
        env = dict(host.data["environment"]["machine"])
        for k, v in host.data["environment"].get("user", {}).items():
            mk = next((m for m in env if m.lower() == k.lower()), None)
            if mk is not None and k.lower() == "path":
                env[mk] = env[mk].rstrip(";") + ";" + v
            else:
                env[mk or k] = v
        comp = host.data["computer"]
        env.update({"SystemRoot": r"C:\Windows", "SystemDrive": "C:", "COMPUTERNAME": comp["name"].upper(),
                    "ProgramFiles": r"C:\Program Files", "ProgramData": r"C:\ProgramData",
                    "ProgramFiles(x86)": r"C:\Program Files (x86)", "USERPROFILE": r"C:\Users\%s" % comp["user"],
                    "USERNAME": comp["user"], "USERDOMAIN": comp["name"].upper(), "HOMEDRIVE": "C:",
                    "HOMEPATH": r"\Users\%s" % comp["user"], "APPDATA": r"C:\Users\%s\AppData\Roaming" % comp["user"],
                    "LOCALAPPDATA": r"C:\Users\%s\AppData\Local" % comp["user"]})
        return env

    @staticmethod
    def _get_ci(env: dict, name: str):
        for k, v in env.items():
            if k.lower() == name.lower():
                return k, v
        return None, None

    TARGETS = {"process": "process", "user": "user", "machine": "machine", "0": "process", "1": "user",
               "2": "machine"}

    def _target(self, target, method: str, nargs: int) -> str:
        t = self.TARGETS.get(str(target if target is not None else "Process").lower())
        if t is None:
            raise CmdletError('Cannot convert argument "target", with value: "%s", for "%s" to type '
                              '"System.EnvironmentVariableTarget": "Cannot convert value \\"%s\\" to type '
                              '"System.EnvironmentVariableTarget". Error: \\"Unable to match the identifier name %s '
                              'to a valid enumerator name. Specify one of the following enumerator names and try '
                              'again:\r\nProcess, User, Machine\\""' % (target, method, target, target),
                              "System.Management.Automation.MethodException", "NotSpecified",
                              "MethodArgumentConversionInvalidCastArgument", method)
        return t

    def get_environment_variable(self, name, target="Process"):
        t = self._target(target, "GetEnvironmentVariable", 2)
        if name is None:
            raise dotnet_method("GetEnvironmentVariable", 2, "System.ArgumentNullException",
                                "Value cannot be null.\r\nParameter name: variable")
        if t == "process":
            k, v = self._get_ci(self.request_env, str(name))
            if k is not None:
                return v
            return self._get_ci(self.process_env, str(name))[1]
        return self._get_ci(self.d["environment"][t], str(name))[1]

    def set_environment_variable(self, name, value, target="Process") -> None:
        t = self._target(target, "SetEnvironmentVariable", 3)
        if name is None:
            raise dotnet_method("SetEnvironmentVariable", 3, "System.ArgumentNullException",
                                "Value cannot be null.\r\nParameter name: variable")
        name = str(name)
        if name == "":
            raise dotnet_method("SetEnvironmentVariable", 3, "System.ArgumentException",
                                "String cannot be of zero length.\r\nParameter name: variable")
        if "=" in name:
            raise dotnet_method("SetEnvironmentVariable", 3, "System.ArgumentException",
                                "Environment variable name cannot contain equal character.")
        if t == "machine" and len(name) >= 255:
            raise dotnet_method("SetEnvironmentVariable", 3, "System.ArgumentException",
                                "Environment variable name cannot be longer than 255 characters.\r\nParameter name: "
                                "variable")
        env = self.process_env if t == "process" else self.d["environment"][t]
        k, _ = self._get_ci(env, name)
        if value is None or str(value) == "":
            if k is not None:
                del env[k]
        else:
            env[k or name] = str(value)
        if t == "process":
            rk, _ = self._get_ci(self.request_env, name)
            if rk is not None:
                del self.request_env[rk]

    def expand_env(self, text: str) -> str:
        env = dict(self.process_env)
        env.update(self.request_env)
        low = {k.lower(): v for k, v in env.items()}
        return re.sub(r"%([^%]+)%", lambda m: low.get(m.group(1).lower(), m.group(0)), text)

    def which(self, program: str) -> str | None:
        """Where a bare program name is found through the machine PATH and PATHEXT."""
        env = self.d["environment"]["machine"]
        path = self._get_ci(env, "Path")[1] or ""
        exts = [""] + [e.lower() for e in (self._get_ci(env, "PATHEXT")[1] or ".EXE").split(";") if e]
        if "." in program.rsplit("\\", 1)[-1]:
            exts = [""]
        for d in [x for x in path.split(";") if x.strip()]:
            d = self.expand_env(d.strip().strip('"'))
            for e in exts:
                cand = d.rstrip("\\") + "\\" + program + e
                if self.fs.is_file(cand):
                    return cand
        return None

    # ============================================================================================
    # Scheduled tasks
    # https://learn.microsoft.com/powershell/module/scheduledtasks/register-scheduledtask
    # https://learn.microsoft.com/powershell/module/scheduledtasks/new-scheduledtasktrigger (-AtStartup)
    # https://learn.microsoft.com/powershell/module/scheduledtasks/new-scheduledtasksettingsset
    #   (-RestartCount, -RestartInterval, -ExecutionTimeLimit)
    # https://learn.microsoft.com/windows/win32/taskschd/task-scheduler-error-and-success-constants
    # ============================================================================================

    @staticmethod
    def new_scheduled_task_action(execute, argument=None, working_directory=None) -> dict:
        if not execute:
            raise parameter_null("Execute", "New-ScheduledTaskAction")
        return {"execute": str(execute), "arguments": argument, "working_directory": working_directory}

    @staticmethod
    def new_scheduled_task_trigger(at_startup=False, at_log_on=False, once=False, daily=False, at=None,
                                   delay=None) -> dict:
        kind = "AtStartup" if at_startup else "AtLogOn" if at_log_on else "Once" if once else "Daily" if daily else None
        if kind is None:
            raise CmdletError("Parameter set cannot be resolved using the specified named parameters.",
                              "System.Management.Automation.ParameterBindingException", "InvalidArgument",
                              "AmbiguousParameterSet,New-ScheduledTaskTrigger", "New-ScheduledTaskTrigger")
        return {"type": kind, "enabled": True, "delay": delay, "at": at}

    @staticmethod
    def new_scheduled_task_principal(user_id="SYSTEM", logon_type="ServiceAccount", run_level="Limited") -> dict:
        return {"user_id": user_id, "logon_type": logon_type, "run_level": run_level}

    @staticmethod
    def new_scheduled_task_settings_set(restart_count=0, restart_interval=None, execution_time_limit="PT72H",
                                        start_when_available=False, allow_start_if_on_batteries=False,
                                        dont_stop_if_going_on_batteries=False, disable=False) -> dict:
        return {"restart_count": int(restart_count or 0), "restart_interval": restart_interval,
                "execution_time_limit": execution_time_limit, "start_when_available": bool(start_when_available),
                "allow_start_if_on_batteries": bool(allow_start_if_on_batteries),
                "dont_stop_if_going_on_batteries": bool(dont_stop_if_going_on_batteries), "enabled": not disable}

    @staticmethod
    def _task_path(task_path) -> str:
        p = str(task_path or "\\")
        if not p.startswith("\\"):
            p = "\\" + p
        if not p.endswith("\\"):
            p += "\\"
        return p

    def _task_key(self, name, path) -> str:
        return self._task_path(path) + str(name)

    def _find_tasks(self, task_name=None, task_path=None, cmd="Get-ScheduledTask") -> list[tuple[str, dict]]:
        out = []
        tp = self._task_path(task_path) if task_path else None
        for key, t in self.d["scheduled_tasks"].items():
            if tp and t["task_path"].lower() != tp.lower():
                continue
            if task_name is not None:
                n = str(task_name)
                if not (wild_match(n, t["task_name"]) if has_wildcard(n) else t["task_name"].lower() == n.lower()):
                    continue
            out.append((key, t))
        if not out and task_name is not None and not has_wildcard(str(task_name)):
            raise cim_not_found("MSFT_ScheduledTask", "TaskName", str(task_name), cmd)
        return out

    def _task_obj(self, t: dict) -> dict:
        return {"TaskName": t["task_name"], "TaskPath": t["task_path"], "State": t["state"],
                "Description": t.get("description") or None,
                "Actions": [{"Execute": a["execute"], "Arguments": a.get("arguments"),
                             "WorkingDirectory": a.get("working_directory")} for a in t["actions"]],
                "Triggers": [{"Type": tr["type"], "Enabled": tr.get("enabled", True), "Delay": tr.get("delay"),
                              "StartBoundary": tr.get("at"),
                              "CimClass": {"AtStartup": "MSFT_TaskBootTrigger", "AtLogOn": "MSFT_TaskLogonTrigger",
                                           "Once": "MSFT_TaskTimeTrigger", "Daily": "MSFT_TaskDailyTrigger"}.get(
                                  tr["type"], "MSFT_TaskTrigger")} for tr in t["triggers"]],
                "Principal": {"UserId": t["principal"].get("user_id"), "LogonType": t["principal"].get("logon_type"),
                              "RunLevel": t["principal"].get("run_level")},
                "Settings": {"RestartCount": t["settings"].get("restart_count", 0),
                             "RestartInterval": t["settings"].get("restart_interval"),
                             "ExecutionTimeLimit": t["settings"].get("execution_time_limit"),
                             "Enabled": t["settings"].get("enabled", True),
                             "StartWhenAvailable": t["settings"].get("start_when_available", False),
                             # the rest of MSFT_TaskSettings as New-ScheduledTaskSettingsSet leaves them
                             "AllowDemandStart": True, "AllowHardTerminate": True, "Compatibility": "Vista",
                             "DeleteExpiredTaskAfter": None,
                             "DisallowStartIfOnBatteries": not t["settings"].get("allow_start_if_on_batteries", False),
                             "DisallowStartOnRemoteAppSession": False, "Hidden": False,
                             "MultipleInstances": "IgnoreNew", "Priority": 7, "RunOnlyIfIdle": False,
                             "RunOnlyIfNetworkAvailable": False,
                             "StopIfGoingOnBatteries": not t["settings"].get("dont_stop_if_going_on_batteries", False),
                             "UseUnifiedSchedulingEngine": True, "Volatile": False, "WakeToRun": False},
                "Author": t.get("author"), "Date": iso(t.get("registered")), "URI": t["task_path"] + t["task_name"],
                "Version": None, "Source": None, "Documentation": None, "SecurityDescriptor": None}

    def get_scheduled_task(self, task_name=None, task_path=None) -> list[dict]:
        return [self._task_obj(t) for _, t in self._find_tasks(task_name, task_path)]

    def get_scheduled_task_info(self, task_name, task_path=None) -> dict:
        _, t = self._find_tasks(task_name, task_path, "Get-ScheduledTaskInfo")[0]
        return {"TaskName": t["task_name"], "TaskPath": t["task_path"], "LastRunTime": iso(t.get("last_run_time")),
                "LastTaskResult": t.get("last_task_result", SCHED_S_TASK_HAS_NOT_RUN), "NextRunTime": None,
                "NumberOfMissedRuns": 0}

    def register_scheduled_task(self, task_name, action=None, trigger=None, principal=None, settings=None,
                                task_path="\\", description=None, force=False) -> dict:
        cmd = "Register-ScheduledTask"
        if not task_name:
            raise parameter_null("TaskName", cmd)
        actions = as_list(action)
        if not actions:
            raise CmdletError("Parameter set cannot be resolved using the specified named parameters.",
                              "System.Management.Automation.ParameterBindingException", "InvalidArgument",
                              "AmbiguousParameterSet,%s" % cmd, cmd)
        key = self._task_key(task_name, task_path)
        existing = next((k for k in self.d["scheduled_tasks"] if k.lower() == key.lower()), None)
        if existing and not force:
            raise cim_already_exists("HRESULT 0x800700b7", cmd)
        previous = None
        if existing:
            previous = self.d["scheduled_tasks"].pop(existing)
        st = settings or self.new_scheduled_task_settings_set()
        t = {"task_name": str(task_name), "task_path": self._task_path(task_path), "description": description or "",
             "state": "Ready" if st.get("enabled", True) else "Disabled",
             "actions": [dict(a) for a in actions], "triggers": [dict(x) for x in as_list(trigger)],
             "principal": dict(principal or self.new_scheduled_task_principal(
                 self.d["computer"].get("user", "Administrator"), "Interactive", "Limited")),
             "settings": dict(st), "last_run_time": None, "last_task_result": SCHED_S_TASK_HAS_NOT_RUN, "runs": 0,
             "registered": time.time(),
             "author": "%s\\%s" % (self.d["computer"]["name"].upper(), self.d["computer"].get("user", "Administrator"))}
        if previous is not None and previous["state"] == "Running":
            # Updating a task's definition (TASK_CREATE_OR_UPDATE) leaves a running instance running; it
            # uses the new definition from its next start.
            t["state"] = "Running"
            for k in ("last_run_time", "last_task_result", "runs"):
                t[k] = previous.get(k, t[k])
        self.d["scheduled_tasks"][key] = t
        return self._task_obj(t)

    def unregister_scheduled_task(self, task_name, task_path=None) -> None:
        for key, _ in self._find_tasks(task_name, task_path, "Unregister-ScheduledTask"):
            if self.host.runtime is not None:
                self.host.runtime.task_stopped(self, key)
            del self.d["scheduled_tasks"][key]

    def start_scheduled_task(self, task_name, task_path=None) -> None:
        for key, _ in self._find_tasks(task_name, task_path, "Start-ScheduledTask"):
            self.run_task(key, "manual")

    def stop_scheduled_task(self, task_name, task_path=None) -> None:
        """Stop-ScheduledTask: running instances end; LastTaskResult becomes SCHED_S_TASK_TERMINATED
        (0x41306, "The last run of the task was terminated by the user"). A task that is not running is
        left alone."""
        for key, t in self._find_tasks(task_name, task_path, "Stop-ScheduledTask"):
            if t["state"] != "Running":
                continue
            if self.host.runtime is not None:
                self.host.runtime.task_stopped(self, key)
            t["state"] = "Ready" if t["settings"].get("enabled", True) else "Disabled"
            t["last_task_result"] = SCHED_S_TASK_TERMINATED

    def schtasks_exe(self, argv: list[str]) -> tuple[int, str, str]:
        """`schtasks.exe /Run /TN <name>` and `/End /TN <name>`: (exit code, stdout, stderr).
        https://learn.microsoft.com/windows-server/administration/windows-commands/schtasks-run (and -end).
        Not verified against Windows: /End on a task that is not running is modelled as success."""
        usage = 'Type "SCHTASKS /?" for usage.\r\n'
        if not argv:
            return 1, "", "ERROR: Invalid syntax.\r\n" + usage
        verb = str(argv[0]).lower()
        opts, i = {}, 1
        while i < len(argv):
            k = str(argv[i]).lower()
            if k in ("/tn", "/s", "/u", "/p") and i + 1 < len(argv):
                opts[k] = str(argv[i + 1])
                i += 2
            elif k == "/i":
                opts[k] = True
                i += 1
            else:
                return 1, "", "ERROR: Invalid argument/option - '%s'.\r\n%s" % (argv[i], usage)
        if verb not in ("/run", "/end") or "/tn" not in opts:
            return 1, "", "ERROR: Invalid syntax.\r\n" + usage
        name = opts["/tn"]
        path, _, leaf = name.rpartition("\\")
        folder = path + "\\" if path else "\\"
        try:
            found = self._find_tasks(leaf, folder, "schtasks")
        except CmdletError:
            found = []
        if not found:
            return 1, "", "ERROR: The system cannot find the file specified.\r\n"
        if verb == "/run":
            self.start_scheduled_task(leaf, folder)
            return 0, 'SUCCESS: Attempted to run the scheduled task "%s".\r\n' % name, ""
        self.stop_scheduled_task(leaf, folder)
        return 0, 'SUCCESS: The scheduled task "%s" has been terminated successfully.\r\n' % name, ""

    def run_task(self, key: str, reason: str) -> dict:
        """Run a task's first action: the program must exist on the simulated disk. A powershell.exe
        -File script that is missing exits 0xFFFD0000, a missing program gives 0x80070002; a failed
        run is retried RestartCount times (New-ScheduledTaskSettingsSet -RestartCount)."""
        t = self.d["scheduled_tasks"][key]
        a = t["actions"][0] if t["actions"] else {"execute": "", "arguments": None}
        exe = self.resolve_binary(a["execute"])
        if exe and "\\" not in exe:
            exe = self.which(exe) or exe
        args = self.expand_env(str(a.get("arguments") or ""))
        if not self._binary_exists(exe):
            result = ERROR_FILE_NOT_FOUND_HRESULT
        else:
            result = SCHED_S_TASK_RUNNING
            base = exe.rsplit("\\", 1)[-1].lower()
            if base in ("powershell.exe", "pwsh.exe"):
                m = re.search(r"-f(?:ile)?\s+(\"[^\"]+\"|'[^']+'|\S+)", args, re.I)
                if m and not self.fs.is_file(m.group(1).strip("\"'")):
                    result = PS_FILE_NOT_FOUND_EXIT
        failed = result not in (0, SCHED_S_TASK_RUNNING)
        attempts = 1 + (int(t["settings"].get("restart_count") or 0) if failed else 0)
        now = time.time()
        t["last_run_time"] = now
        t["last_task_result"] = result
        t["runs"] = int(t.get("runs") or 0) + attempts
        t["state"] = "Running" if result == SCHED_S_TASK_RUNNING else ("Ready" if t["settings"].get("enabled", True)
                                                                       else "Disabled")
        run = {"boot": self.d["boot"]["count"], "time": now, "time_iso": iso(now), "reason": reason, "task": key,
               "execute": a["execute"], "resolved": exe, "arguments": a.get("arguments"), "result": result,
               "result_hex": "0x%08X" % result, "attempts": attempts, "ok": not failed}
        runs = self.d.setdefault("startup_runs", [])
        runs.append(run)
        del runs[:-200]
        if result == SCHED_S_TASK_RUNNING and self.host.runtime is not None:
            self.host.runtime.task_started(self, key, t, exe, args)
        return run

    # ============================================================================================
    # Computer information (CIM)
    # https://learn.microsoft.com/windows/win32/cimwin32prov/win32-operatingsystem
    # https://learn.microsoft.com/windows/win32/cimwin32prov/win32-computersystem
    # https://learn.microsoft.com/powershell/module/nettcpip/get-netipaddress
    # ============================================================================================

    def _memory_bytes(self) -> int:
        return int(self.d["computer"]["memory_mb"]) * 1048576 - 523264  # firmware-reserved, as real hosts show

    def get_cim_instance(self, class_name: str, filter: str | None = None):
        comp = self.d["computer"]
        cls = str(class_name).lower()
        boot = self.d["boot"].get("time_unix") or time.time()
        if cls == "win32_operatingsystem":
            total_kb = self._memory_bytes() // 1024
            return {"Caption": comp["os_caption"], "Version": comp["os_version"],
                    "BuildNumber": str(comp["build_number"]), "OSArchitecture": comp["os_architecture"],
                    "TotalVisibleMemorySize": total_kb, "FreePhysicalMemory": int(total_kb * 0.6),
                    "LastBootUpTime": iso(boot), "LastBootUpTimeUnix": boot, "CSName": comp["name"].upper(),
                    "Name": "%s|C:\\Windows|\\Device\\Harddisk0\\Partition2" % comp["os_caption"],
                    "ProductType": comp.get("product_type", 3), "OperatingSystemSKU": 8,
                    "SystemDirectory": r"C:\Windows\system32", "WindowsDirectory": r"C:\Windows", "OSLanguage": 1033,
                    "SizeStoredInPagingFiles": 1245184, "FreeSpaceInPagingFiles": 1200000}
        if cls == "win32_computersystem":
            return {"Name": comp["name"].upper(), "DNSHostName": comp["name"], "Domain": comp["domain"],
                    "PartOfDomain": bool(comp["part_of_domain"]),
                    "Workgroup": None if comp["part_of_domain"] else comp["domain"],
                    "NumberOfLogicalProcessors": int(comp["logical_processors"]), "NumberOfProcessors": 1,
                    "TotalPhysicalMemory": self._memory_bytes(), "Manufacturer": comp["manufacturer"],
                    "Model": comp["model"], "DomainRole": 3 if comp["part_of_domain"] else 2,
                    "SystemType": "x64-based PC", "PrimaryOwnerName": comp.get("registered_owner")}
        if cls == "win32_processor":
            return {"Name": "Intel(R) Xeon(R) CPU", "NumberOfCores": int(comp.get("cores") or comp["logical_processors"]),
                    "NumberOfLogicalProcessors": int(comp["logical_processors"]), "Architecture": 9}
        if cls == "win32_service":
            svcs = [self._win32_service_obj(s) for s in self.d["services"].values()]
            if filter:
                m = re.search(r"name\s*=\s*'([^']*)'", filter, re.I)
                if m:
                    svcs = [s for s in svcs if s["Name"].lower() == m.group(1).lower()]
            return svcs
        if cls == "win32_networkadapterconfiguration":
            return [{"Description": "Red Hat VirtIO Ethernet Adapter", "IPEnabled": True, "Index": 1,
                     "IPAddress": list(comp["ipv4_addresses"]) + list(comp.get("ipv6_addresses") or []),
                     "DNSHostName": comp["name"]}]
        raise CmdletError("Invalid class ", CIM_EXC, "MetadataError",
                          "HRESULT 0x80041010,Microsoft.Management.Infrastructure.CimCmdlets.GetCimInstanceCommand",
                          "Get-CimInstance", class_name)

    def get_net_ip_address(self, address_family=None) -> list[dict]:
        comp = self.d["computer"]
        out = []
        fam = (address_family or "").lower()
        if fam in ("", "ipv4"):
            for a in comp["ipv4_addresses"]:
                out.append({"IPAddress": a, "InterfaceAlias": comp.get("interface_alias", "Ethernet"),
                            "AddressFamily": "IPv4", "PrefixLength": comp.get("prefix_length", 24),
                            "PrefixOrigin": "Manual", "AddressState": "Preferred"})
            out.append({"IPAddress": "127.0.0.1", "InterfaceAlias": "Loopback Pseudo-Interface 1",
                        "AddressFamily": "IPv4", "PrefixLength": 8, "PrefixOrigin": "WellKnown",
                        "AddressState": "Preferred"})
        if fam in ("", "ipv6"):
            for a in comp.get("ipv6_addresses") or []:
                out.append({"IPAddress": a, "InterfaceAlias": comp.get("interface_alias", "Ethernet"),
                            "AddressFamily": "IPv6", "PrefixLength": 64, "PrefixOrigin": "WellKnown",
                            "AddressState": "Preferred"})
        return out

    # ============================================================================================
    # Boot
    # ============================================================================================

    def boot(self, boot_time_unix: float) -> dict:
        """What a restart changes: pending feature operations complete, the pending-reboot flag clears,
        services start as configured (automatic and delayed ones whose binary exists), AtStartup
        scheduled tasks run, the boot time moves."""
        d = self.d
        done = []
        pend_remove = d.get("pending_remove") or []
        for n, st in list(d["features"].items()):
            if st == "InstallPending":
                self._finish_feature(n, "Installed")
                done.append((n, "Installed"))
            elif st == "UninstallPending":
                final = "Removed" if n in pend_remove else "Available"
                self._finish_feature(n, final)
                done.append((n, final))
        d["pending_remove"] = []
        for n, st in list(d["optional_features"].items()):
            if st == "EnablePending":
                d["optional_features"][n] = "Enabled"
            elif st == "DisablePending":
                d["optional_features"][n] = "Disabled"
        d["reboot_pending"] = False
        d["reboot_pending_reasons"] = []
        if self.host.runtime is not None:
            self.host.runtime.stop_all("reboot")  # every process ends with the old boot
        d["hns_networks"] = [n for n in d.get("hns_networks") or [] if n.get("Persistent")]
        self.log_event("System", "EventLog", "Information", 6005, "The Event log service was started.")
        for k in [k for k, s in d["services"].items() if s.get("marked_for_delete")]:
            del d["services"][k]
        for s in d["services"].values():
            s["status"] = "Stopped"
            s.pop("pid", None)
        started, failed = [], []
        # Automatic services first, then delayed ones (they start ~2 minutes after boot on Windows).
        for mode in ("auto", "delayed"):
            for s in sorted(d["services"].values(), key=lambda x: x["name"].lower()):
                if s["start_mode"] != mode or s["status"] == "Running":
                    continue
                try:
                    self._start(s, "boot", "ServiceControlManager")
                    started.append(s["name"])
                except CmdletError:
                    failed.append(s["name"])
        d["boot"]["count"] = int(d["boot"].get("count") or 0) + 1
        d["boot"]["time_unix"] = boot_time_unix
        runs = []
        for key, t in list(d["scheduled_tasks"].items()):
            if t["state"] == "Running":
                t["state"] = "Ready"
            if not t["settings"].get("enabled", True):
                continue
            if any(tr.get("type") == "AtStartup" and tr.get("enabled", True) for tr in t["triggers"]):
                runs.append(self.run_task(key, "boot"))
        entry = {"count": d["boot"]["count"], "time_unix": boot_time_unix, "time_iso": iso(boot_time_unix),
                 "features": done, "services_started": started, "services_failed": failed,
                 "tasks_run": [r["task"] for r in runs]}
        d["boot"]["history"] = (d["boot"].get("history") or [])[-49:] + [entry]
        return entry

    # ============================================================================================
    # Classic event logs
    # https://learn.microsoft.com/powershell/module/microsoft.powershell.management/get-eventlog?view=powershell-5.1
    # https://learn.microsoft.com/powershell/module/microsoft.powershell.management/write-eventlog?view=powershell-5.1
    # https://learn.microsoft.com/powershell/module/microsoft.powershell.management/new-eventlog?view=powershell-5.1
    # https://learn.microsoft.com/powershell/module/microsoft.powershell.diagnostics/get-winevent?view=powershell-5.1
    # https://learn.microsoft.com/dotnet/api/system.diagnostics.eventlogentry (EventLogEntryType: Error,
    # Warning, Information, SuccessAudit, FailureAudit); EventLogRecord levels: 1 Critical, 2 Error,
    # 3 Warning, 4 Information. Newest entries first, as both cmdlets list them.
    # ============================================================================================

    ENTRY_TYPES = ["Error", "Information", "FailureAudit", "SuccessAudit", "Warning"]  # -EntryType's ValidateSet
    LEVELS = {"Error": (2, "Error"), "Warning": (3, "Warning"), "Information": (4, "Information"),
              "SuccessAudit": (0, "Information"), "FailureAudit": (0, "Information")}
    MAX_EVENTS_PER_LOG = 1000

    def _log_key(self, name) -> str | None:
        n = str(name or "").lower()
        return next((k for k in self.d["event_log"] if k.lower() == n), None)

    def _entry_type(self, value, cmd: str, cmd_type: str) -> str:
        v = next((t for t in self.ENTRY_TYPES if t.lower() == str(value).lower()), None)
        if v is None:
            raise validate_set("EntryType", str(value), self.ENTRY_TYPES, cmd, PSC + cmd_type)
        return v

    def log_event(self, log_name: str, source: str, entry_type: str, event_id: int, message: str) -> dict:
        """What a program's ReportEvent does: append an entry (the source is registered with the log on
        first use, as EventCreate-style registration does). Not a cmdlet: the stand-in programs, the
        Service Control Manager and the boot write through this."""
        key = self._log_key(log_name)
        if key is None:
            key = str(log_name)
            self.d["event_log"][key] = []
            self.d["event_sources"].setdefault(key, [])
        srcs = self.d["event_sources"].setdefault(key, [])
        if not any(x.lower() == str(source).lower() for x in srcs):
            srcs.append(str(source))
        entries = self.d["event_log"][key]
        index = (entries[-1]["index"] + 1) if entries else 1
        e = {"index": index, "time": time.time(), "source": str(source), "entry_type": str(entry_type),
             "event_id": int(event_id), "message": str(message)}
        entries.append(e)
        del entries[:-self.MAX_EVENTS_PER_LOG]
        return e

    def _eventlog_entry_obj(self, log: str, e: dict) -> dict:
        # System.Diagnostics.EventLogEntry as Get-EventLog writes it.
        return {"Index": e["index"], "EntryType": e["entry_type"], "InstanceId": e["event_id"], "EventID": e["event_id"],
                "Message": e["message"], "Source": e["source"], "Category": "(0)", "CategoryNumber": 0,
                "ReplacementStrings": [e["message"]], "TimeGenerated": iso(e["time"]), "TimeWritten": iso(e["time"]),
                "TimeGeneratedUnix": e["time"], "MachineName": self.d["computer"]["name"].upper(), "UserName": None,
                "Log": log}

    def get_event_log(self, log_name=None, newest=None, source=None, entry_type=None, instance_id=None,
                      message=None, after=None, before=None, list=False):
        cmd, cmd_type = "Get-EventLog", "GetEventLogCommand"
        if list:
            return [{"Log": k, "LogDisplayName": k, "Entries": len(v), "MaximumKilobytes": 20480,
                     "OverflowAction": "OverwriteAsNeeded", "MinimumRetentionDays": 0}
                    for k, v in self.d["event_log"].items()]
        if not log_name:
            raise parameter_null("LogName", cmd, PSC + cmd_type)
        key = self._log_key(log_name)
        if key is None:
            # best recollection of the message; EventLog.Exists is false for the name
            raise CmdletError("The event log '%s' on computer '.' does not exist." % log_name,
                              "System.InvalidOperationException", "NotSpecified",
                              "System.InvalidOperationException," + PSC + cmd_type, cmd, log_name)
        if newest is not None and int(newest) < 0:
            raise CmdletError("Cannot validate argument on parameter 'Newest'. The %s argument is less than the "
                              "minimum allowed range of 0. Supply an argument that is greater than or equal to 0 and "
                              "then try the command again." % newest,
                              "System.Management.Automation.ParameterBindingValidationException", "InvalidData",
                              "ParameterArgumentValidationError," + PSC + cmd_type, cmd)
        types = [self._entry_type(t, cmd, cmd_type) for t in as_list(entry_type)]
        sources = [str(x) for x in as_list(source)]
        ids = [int(x) for x in as_list(instance_id)]
        out = []
        for e in reversed(self.d["event_log"][key]):
            if sources and not any(wild_match(p, e["source"]) for p in sources):
                continue
            if types and e["entry_type"] not in types:
                continue
            if ids and e["event_id"] not in ids:
                continue
            if message is not None and not wild_match(str(message), e["message"]):
                continue
            if after is not None and e["time"] <= float(after):
                continue
            if before is not None and e["time"] >= float(before):
                continue
            out.append(self._eventlog_entry_obj(key, e))
            if newest is not None and len(out) >= int(newest):
                break
        if not out:
            # EventlogResources.NoEntriesFound, written as an error (GetEventLogCommand.cs)
            raise CmdletError("No matches found", "System.ArgumentException", "ObjectNotFound",
                              "GetEventLogNoEntriesFound," + PSC + cmd_type, cmd)
        return out

    def get_win_event(self, log_name=None, provider_name=None, max_events=None, filter_hashtable=None):
        cmd, cmd_type = "Get-WinEvent", "GetWinEventCommand"
        fh = dict(filter_hashtable or {})
        logs = as_list(fh.get("LogName", log_name))
        providers = [str(x) for x in as_list(fh.get("ProviderName", provider_name))]
        levels = [int(x) for x in as_list(fh.get("Level"))]
        ids = [int(x) for x in as_list(fh.get("Id"))]
        keys = []
        if logs:
            for name in logs:
                k = self._log_key(name)
                if k is None:
                    raise CmdletError("There is not an event log on the localhost computer that matches \"%s\"." % name,
                                      "System.Exception", "ObjectNotFound",
                                      "NoMatchingLogsFound,Microsoft.PowerShell.Commands." + cmd_type, cmd, name)
                keys.append(k)
        else:
            keys = [k for k, v in self.d["event_log"].items()
                    if any(any(wild_match(p, e["source"]) for p in providers) for e in v)]
        out = []
        for k in keys:
            for e in self.d["event_log"][k]:
                level, level_name = self.LEVELS.get(e["entry_type"], (4, "Information"))
                if providers and not any(wild_match(p, e["source"]) for p in providers):
                    continue
                if levels and level not in levels:
                    continue
                if ids and e["event_id"] not in ids:
                    continue
                out.append({"Id": e["event_id"], "Level": level, "LevelDisplayName": level_name,
                            "ProviderName": e["source"], "LogName": k, "RecordId": e["index"],
                            "TimeCreated": iso(e["time"]), "TimeCreatedUnix": e["time"], "Message": e["message"],
                            "MachineName": self.d["computer"]["name"].upper()})
        out.sort(key=lambda x: x["TimeCreatedUnix"], reverse=True)
        if max_events is not None:
            out = out[:int(max_events)]
        if not out:
            raise CmdletError("No events were found that match the specified selection criteria.", "System.Exception",
                              "ObjectNotFound", "NoMatchingEventsFound,Microsoft.PowerShell.Commands." + cmd_type, cmd)
        return out

    def new_event_log(self, log_name, source) -> None:
        cmd, cmd_type = "New-EventLog", "NewEventLogCommand"
        for src in as_list(source):
            for k, srcs in self.d["event_sources"].items():
                if any(x.lower() == str(src).lower() for x in srcs):
                    # best recollection of the message
                    raise CmdletError('The "%s" source is already registered on the "localhost" computer.' % src,
                                      "System.InvalidOperationException", "InvalidOperation",
                                      PSC + cmd_type, cmd, src)
            key = self._log_key(log_name)
            if key is None:
                key = str(log_name)
                self.d["event_log"][key] = []
            self.d["event_sources"].setdefault(key, []).append(str(src))

    def write_event_log(self, log_name, source, message, event_id=0, entry_type="Information", category=0) -> None:
        cmd, cmd_type = "Write-EventLog", "WriteEventLogCommand"
        et = self._entry_type(entry_type, cmd, cmd_type)
        key = self._log_key(log_name)
        if key is None:
            raise CmdletError("The event log '%s' on computer '.' does not exist." % log_name,
                              "System.InvalidOperationException", "NotSpecified", PSC + cmd_type, cmd, log_name)
        if not any(x.lower() == str(source).lower() for x in self.d["event_sources"].get(key, [])):
            # best recollection of the message
            raise CmdletError('The source name "%s" does not exist on computer "localhost".' % source,
                              "System.InvalidOperationException", "NotSpecified", PSC + cmd_type, cmd, source)
        self.log_event(key, source, et, int(event_id), message)

    # -- the Service Control Manager's entries in the System log --------------------------------
    # System error messages (https://learn.microsoft.com/windows/win32/debug/system-error-codes--0-499- and
    # --1000-1299-) for the reasons a service does not start: the event log's text and, without the final
    # period, the Win32Exception inside a failed Start-Service.
    SCM_ERRORS = {"2": "The system cannot find the file specified.",
                  "1053": "The service did not respond to the start or control request in a timely fashion.",
                  "1058": "The service cannot be started, either because it is disabled or because it has no "
                          "enabled devices associated with it.",
                  "1067": "The process terminated unexpectedly.",
                  "1068": "The dependency service or group failed to start.",
                  "1072": "The specified service has been marked for deletion.",
                  "1075": "The dependency service does not exist or has been marked for deletion."}

    def _scm_start_failed(self, s: dict, why: str) -> None:
        # event 7000: "The %1 service failed to start due to the following error: %n%2"
        code = str(why or "").split(" ", 1)[0]
        text = self.SCM_ERRORS.get(code, str(why))
        if code == "1053":
            self.log_event("System", "Service Control Manager", "Error", 7009,
                           "A timeout was reached (30000 milliseconds) while waiting for the %s service to connect."
                           % s["display_name"])
        self.log_event("System", "Service Control Manager", "Error", 7000,
                       "The %s service failed to start due to the following error: \r\n%s" % (s["display_name"], text))

    # ============================================================================================
    # Host Networking Service
    # https://learn.microsoft.com/powershell/module/hostnetworkingservice/ (Get-HnsNetwork,
    # Remove-HnsNetwork [-InputObjects] <Object[]> from the pipeline). The module comes with the
    # Containers feature; the objects are HNS's network JSON (property names as HNS writes them; the
    # set kept here is the commonly shown one, best recollection). New-HnsNetwork is hns.psm1's
    # (microsoft/SDN), which flannel and the CNI plugins use through HNS's API.
    # ============================================================================================

    HNS_COMMANDS = {c.lower(): c for c in ("Get-HnsNetwork", "Remove-HnsNetwork", "New-HnsNetwork", "Get-HnsEndpoint",
                                           "Remove-HnsEndpoint", "Get-HnsPolicyList", "Remove-HnsPolicyList",
                                           "Get-HnsNamespace")}

    def hns_available(self) -> bool:
        return self.d["features"].get("Containers") == "Installed" or self.d["features"].get("Hyper-V") == "Installed"

    def _hns_command(self, name: str) -> None:
        if not self.hns_available():
            raise CmdletError("The term '%s' is not recognized as the name of a cmdlet, function, script file, or "
                              "operable program. Check the spelling of the name, or if a path was included, verify "
                              "that the path is correct and try again." % name,
                              "System.Management.Automation.CommandNotFoundException", "ObjectNotFound",
                              "CommandNotFoundException", name)

    def get_command(self, name):
        """Get-Command NAME -ErrorAction SilentlyContinue: the CommandInfo, or None. Only the commands
        whose presence depends on the host's state are modelled (the HostNetworkingService module);
        the cmdlet layer's other cmdlets are always there."""
        n = str(name).lower()
        if n in self.HNS_COMMANDS:
            if not self.hns_available():
                return None
            return {"Name": self.HNS_COMMANDS[n], "CommandType": "Function", "Source": "HostNetworkingService"}
        from .modules.sim_cmdlet import snake  # the same name mapping as the diagnostic module
        if callable(getattr(self, snake(str(name)), None)) and not snake(str(name)).startswith("_"):
            return {"Name": str(name), "CommandType": "Cmdlet", "Source": ""}
        return None

    def get_hns_network(self, id=None) -> list[dict]:
        self._hns_command("Get-HnsNetwork")
        nets = [dict(n) for n in self.d["hns_networks"]]
        if id is not None:
            nets = [n for n in nets if n["ID"].lower() == str(id).strip("{}").lower()]
        return nets

    def remove_hns_network(self, input_objects) -> None:
        self._hns_command("Remove-HnsNetwork")
        ids = set()
        for o in as_list(input_objects):
            nid = o.get("ID") if isinstance(o, dict) else o
            if nid:
                ids.add(str(nid).lower())
        missing = [i for i in ids if not any(n["ID"].lower() == i for n in self.d["hns_networks"])]
        if missing:
            # HNS answers "Element not found." for an unknown network id (best recollection)
            raise CmdletError("Element not found.", "System.Exception", "NotSpecified", "Remove-HnsNetwork",
                              "Remove-HnsNetwork", missing[0])
        self.d["hns_networks"] = [n for n in self.d["hns_networks"] if n["ID"].lower() not in ids]

    def new_hns_network(self, type, name, address_prefix=None, gateway=None, vsid=None, management_ip=None,
                        persistent=False) -> dict:
        self._hns_command("New-HnsNetwork")
        if str(type) not in ("Overlay", "L2Bridge", "L2Tunnel", "NAT", "Transparent", "ICS"):
            raise validate_set("Type", str(type), ["ICS", "Internal", "Transparent", "NAT", "Overlay", "L2Bridge",
                                                     "L2Tunnel", "Layered", "Private"], "New-HnsNetwork",
                               "New-HnsNetwork")
        subnets = []
        if address_prefix:
            pol = [{"Type": "VSID", "VSID": int(vsid)}] if vsid is not None else []
            subnets.append({"AddressPrefix": address_prefix, "GatewayAddress": gateway, "ID": str(uuid.uuid4()).upper(),
                            "ObjectType": 5, "Policies": pol, "State": 0})
        comp = self.d["computer"]
        net = {"ID": str(uuid.uuid4()).upper(), "Name": str(name), "Type": str(type), "State": 1, "Flags": 0,
               "IPv6": False, "ManagementIP": management_ip or (comp.get("ipv4_addresses") or ["127.0.0.1"])[0],
               "DNSServerList": "", "Subnets": subnets, "Policies": [], "CurrentEndpointCount": 0,
               "TotalEndpoints": 0, "Persistent": bool(persistent),
               "Created": iso(time.time())}
        self.d["hns_networks"].append(net)
        return dict(net)
