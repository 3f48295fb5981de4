"""The simulated registry: keys and typed values, as the PowerShell registry provider and
Microsoft.Win32.RegistryKey show them.

Written from Microsoft's documentation:
https://learn.microsoft.com/powershell/module/microsoft.powershell.core/about/about_registry_provider
https://learn.microsoft.com/powershell/module/microsoft.powershell.management/new-item (-Force creates missing parents)
https://learn.microsoft.com/powershell/module/microsoft.powershell.management/new-itemproperty (-PropertyType)
https://learn.microsoft.com/powershell/module/microsoft.powershell.management/set-itemproperty (-Type, creates a
  missing value)
https://learn.microsoft.com/powershell/module/microsoft.powershell.management/remove-itemproperty
https://learn.microsoft.com/dotnet/api/microsoft.win32.registrykey.getvalue (DoNotExpandEnvironmentNames)
https://learn.microsoft.com/dotnet/api/microsoft.win32.registryvaluekind

State: ``host.json`` ``registry`` = lower-case full key name (``HKEY_LOCAL_MACHINE\\SOFTWARE\\Foo``) ->
``{"path": name as created, "values": {lower-case value name: {"name", "kind", "data"}}}``; the default
value is the name ``""`` (``(default)`` in the cmdlets). Data as .NET returns it: String/ExpandString a string
(never expanded here), MultiString a list of strings, DWord a signed Int32, QWord a signed Int64,
Binary/None a list of byte values. A fresh host has the keys in ``SEED``. Only the HKLM: and HKCU: drives
exist by default (other hives through ``Registry::HKEY_...`` paths), as in Windows PowerShell 5.1.
"""

from __future__ import annotations

from .errors import CmdletError

PSC = "Microsoft.PowerShell.Commands."
HIVES = {"HKEY_LOCAL_MACHINE": "HKLM", "HKEY_CURRENT_USER": "HKCU", "HKEY_CLASSES_ROOT": "HKCR",
         "HKEY_USERS": "HKU", "HKEY_CURRENT_CONFIG": "HKCC"}
DRIVES = {"HKLM": "HKEY_LOCAL_MACHINE", "HKCU": "HKEY_CURRENT_USER"}
KINDS = ["String", "ExpandString", "Binary", "DWord", "MultiString", "QWord", "None"]

SEED = {
    "HKEY_LOCAL_MACHINE\\SOFTWARE\\Microsoft\\Windows NT\\CurrentVersion": {
        "ProductName": ("String", "Windows Server 2022 Datacenter"),
        "EditionID": ("String", "ServerDatacenter"),
        "InstallationType": ("String", "Server"),
        "CurrentBuild": ("String", "20348"),
        "CurrentBuildNumber": ("String", "20348"),
        "DisplayVersion": ("String", "21H2"),
        "CurrentMajorVersionNumber": ("DWord", 10),
        "CurrentMinorVersionNumber": ("DWord", 0),
        "SystemRoot": ("String", "C:\\Windows"),
    },
    "HKEY_LOCAL_MACHINE\\SYSTEM\\CurrentControlSet\\Services": {},
    "HKEY_LOCAL_MACHINE\\SYSTEM\\CurrentControlSet\\Control\\Session Manager": {},
    "HKEY_CURRENT_USER\\Software\\Microsoft": {},
    "HKEY_CURRENT_USER\\Environment": {},
}


def _add_key(reg: dict, full: str) -> None:
    parts = full.split("\\")
    for i in range(2, len(parts) + 1):
        name = "\\".join(parts[:i])
        reg.setdefault(name.lower(), {"path": name, "values": {}})


def seed() -> dict:
    reg: dict = {}
    for key, values in SEED.items():
        _add_key(reg, key)
        for n, (kind, data) in values.items():
            reg[key.lower()]["values"][n.lower()] = {"name": n, "kind": kind, "data": data}
    return reg


def normalize(data) -> dict:
    reg = seed() if data is None else {}
    for k, v in (data or {}).items():
        v = dict(v or {})
        path = v.get("path") or k
        reg[path.lower()] = {"path": path, "values": {str(n).lower(): dict(x, name=x.get("name", n))
                                                      for n, x in (v.get("values") or {}).items()}}
    return reg


def is_registry_path(path) -> bool:
    p = str(path or "")
    up = p.upper()
    return up.startswith("REGISTRY::") or any(up.startswith(d + ":") for d in ("HKLM", "HKCU", "HKCR", "HKU", "HKCC"))


def _drive_not_found(drive: str, cmd: str, cmd_type: str, path: str) -> CmdletError:
    return CmdletError("Cannot find drive. A drive with the name '%s' does not exist." % drive,
                       "System.Management.Automation.DriveNotFoundException", "ObjectNotFound",
                       "DriveNotFound," + PSC + cmd_type, cmd, path)


def full_name(path: str, cmd: str, cmd_type: str) -> str:
    """The key's full name (``HKEY_LOCAL_MACHINE\\SOFTWARE\\X``) for a provider path."""
    p = str(path)
    if p.upper().startswith("REGISTRY::"):
        rest = p[len("Registry::"):].lstrip("\\")
        hive, _, sub = rest.partition("\\")
        canon = next((h for h in HIVES if h == hive.upper()), None)
        if canon is None:
            raise CmdletError("Cannot find path '%s' because it does not exist." % p,
                              "System.Management.Automation.ItemNotFoundException", "ObjectNotFound",
                              "PathNotFound," + PSC + cmd_type, cmd, p)
    else:
        drive, _, sub = p.partition(":")
        canon = DRIVES.get(drive.upper())
        if canon is None:
            raise _drive_not_found(drive, cmd, cmd_type, p)
    sub = "\\".join(s for s in sub.replace("/", "\\").split("\\") if s)
    return canon + ("\\" + sub if sub else "")


class Registry:
    def __init__(self, ps):
        self.ps = ps

    @property
    def reg(self) -> dict:
        return self.ps.d["registry"]

    def _key(self, full: str) -> dict | None:
        if "\\" not in full:  # a hive root always exists
            return self.reg.setdefault(full.lower(), {"path": full, "values": {}})
        return self.reg.get(full.lower())

    def _need(self, path, cmd: str, cmd_type: str) -> tuple[str, dict]:
        full = full_name(path, cmd, cmd_type)
        k = self._key(full)
        if k is None:
            raise CmdletError("Cannot find path '%s' because it does not exist." % path,
                              "System.Management.Automation.ItemNotFoundException", "ObjectNotFound",
                              "PathNotFound," + PSC + cmd_type, cmd, str(path))
        return full, k

    def test_path(self, path) -> bool:
        try:
            full = full_name(path, "Test-Path", "TestPathCommand")
        except CmdletError:
            return False
        return self._key(full) is not None

    def get_item(self, path) -> dict:
        """Get-Item: the RegistryKey (Name, SubKeyCount, ValueCount, Property = the value names)."""
        full, k = self._need(path, "Get-Item", "GetItemCommand")
        prefix = full.lower() + "\\"
        subs = [x for x in self.reg if x.startswith(prefix) and "\\" not in x[len(prefix):]]
        return {"Name": k["path"], "PSPath": "Microsoft.PowerShell.Core\\Registry::" + k["path"],
                "SubKeyCount": len(subs), "ValueCount": len(k["values"]),
                "Property": [v["name"] if v["name"] else "(default)" for v in k["values"].values()]}

    def get_value_names(self, path) -> list[str]:
        """RegistryKey.GetValueNames(): the default value is "" (when it is set)."""
        _, k = self._need(path, "Get-Item", "GetItemCommand")
        return [v["name"] for v in k["values"].values()]

    def get_value(self, path, name):
        """RegistryKey.GetValue(name, $null, DoNotExpandEnvironmentNames) and GetValueKind(name):
        (kind, data), or None when the value does not exist."""
        _, k = self._need(path, "Get-Item", "GetItemCommand")
        v = k["values"].get(_value_name(name).lower())
        return None if v is None else (v["kind"], v["data"])

    def new_item(self, path, force=False) -> dict:
        """New-Item for a key: -Force creates missing parents; an existing key without -Force is an error
        (with -Force Windows PowerShell recreates it empty: callers test first)."""
        cmd, cmd_type = "New-Item", "NewItemCommand"
        full = full_name(path, cmd, cmd_type)
        parent = full.rsplit("\\", 1)[0]
        if self._key(full) is not None and not force:
            raise CmdletError("A key at this path already exists.", "System.IO.IOException", "ResourceExists",
                              "System.IO.IOException," + PSC + cmd_type, cmd, str(path))
        if self._key(parent) is None and not force:
            raise CmdletError("Cannot find path '%s' because it does not exist." % parent,
                              "System.Management.Automation.ItemNotFoundException", "ObjectNotFound",
                              "PathNotFound," + PSC + cmd_type, cmd, str(path))
        self.reg.pop(full.lower(), None)
        for x in [x for x in self.reg if x.startswith(full.lower() + "\\")]:
            del self.reg[x]
        _add_key(self.reg, full)
        return self.get_item(path)

    def remove_item(self, path, recurse=False) -> None:
        cmd, cmd_type = "Remove-Item", "RemoveItemCommand"
        full, _ = self._need(path, cmd, cmd_type)
        if "\\" not in full:
            raise CmdletError("Cannot delete a registry hive's root key.", "System.ArgumentException",
                              "InvalidArgument", "System.ArgumentException," + PSC + cmd_type, cmd, str(path))
        subs = [x for x in self.reg if x.startswith(full.lower() + "\\")]
        if subs and not recurse:
            raise CmdletError("Windows PowerShell is in NonInteractive mode. Read and Prompt functionality is not "
                              "available.", "System.Management.Automation.PSInvalidOperationException",
                              "InvalidOperation", "InvalidOperation," + PSC + cmd_type, cmd, str(path))
        for x in subs + [full.lower()]:
            del self.reg[x]

    def _kind(self, kind, param: str, cmd: str, cmd_type: str) -> str:
        canon = next((k for k in KINDS if k.lower() == str(kind).lower()), None)
        if canon is None:
            raise CmdletError("Cannot bind parameter '%s'. Cannot convert value \"%s\" to type "
                              "\"Microsoft.Win32.RegistryValueKind\". Error: \"Unable to match the identifier name %s "
                              "to a valid enumerator name. Specify one of the following enumerator names and try "
                              "again:\nUnknown, String, ExpandString, Binary, DWord, MultiString, QWord, None\""
                              % (param, kind, kind), "System.Management.Automation.ParameterBindingException",
                              "InvalidArgument", "CannotConvertArgumentNoMessage," + PSC + cmd_type, cmd)
        return canon

    def _store(self, k: dict, name, kind: str, value, cmd: str) -> None:
        n = _value_name(name)
        k["values"][n.lower()] = {"name": n, "kind": kind, "data": _convert(kind, value, cmd)}

    def new_item_property(self, path, name, value, property_type="String", force=False) -> None:
        cmd, cmd_type = "New-ItemProperty", "NewItemPropertyCommand"
        _, k = self._need(path, cmd, cmd_type)
        kind = self._kind(property_type, "PropertyType", cmd, cmd_type)
        if _value_name(name).lower() in k["values"] and not force:
            raise CmdletError("The property already exists.", "System.IO.IOException", "ResourceExists",
                              "System.IO.IOException," + PSC + cmd_type, cmd, str(path))
        self._store(k, name, kind, value, cmd)

    def set_item_property(self, path, name, value, type=None) -> None:
        """Set-ItemProperty: creates a missing value; without -Type a new value is a String and an existing
        one keeps its kind."""
        cmd, cmd_type = "Set-ItemProperty", "SetItemPropertyCommand"
        _, k = self._need(path, cmd, cmd_type)
        old = k["values"].get(_value_name(name).lower())
        kind = self._kind(type, "Type", cmd, cmd_type) if type else (old["kind"] if old else "String")
        self._store(k, name, kind, value, cmd)

    def remove_item_property(self, path, name) -> None:
        cmd, cmd_type = "Remove-ItemProperty", "RemoveItemPropertyCommand"
        full, k = self._need(path, cmd, cmd_type)
        n = _value_name(name)
        if n.lower() not in k["values"]:
            raise CmdletError("Property %s does not exist at path %s." % (name, k["path"]),
                              "System.Management.Automation.PSArgumentException", "InvalidArgument",
                              "System.Management.Automation.PSArgumentException," + PSC + cmd_type, cmd, str(path))
        del k["values"][n.lower()]


def _value_name(name) -> str:
    n = "" if name is None else str(name)
    return "" if n.lower() == "(default)" else n


def _convert(kind: str, value, cmd: str):
    """What the provider stores for a -Value of that kind (PowerShell converts the argument)."""
    def fail(target):
        raise CmdletError("Cannot convert value \"%s\" to type \"%s\"." % (value, target),
                          "System.Management.Automation.PSInvalidCastException", "InvalidArgument",
                          "InvalidCastFromStringToInteger", cmd)
    if kind in ("String", "ExpandString"):
        return "" if value is None else str(value)
    if kind == "MultiString":
        return [str(x) for x in (value if isinstance(value, list) else ([] if value is None else [value]))]
    if kind in ("DWord", "QWord"):
        bits = 32 if kind == "DWord" else 64
        try:
            n = int(value or 0)
        except (TypeError, ValueError):
            fail("System.Int%d" % bits)
        if not -(1 << (bits - 1)) <= n < (1 << (bits - 1)):
            fail("System.Int%d" % bits)
        return n
    # Binary / None: byte[]
    items = value if isinstance(value, list) else ([] if value is None else [value])
    out = []
    for x in items:
        if not isinstance(x, int) or not 0 <= x <= 255:
            fail("System.Byte[]")
        out.append(x)
    return out
