param($Mixop)
# win_regedit: probe reads one value of a key as .NET sees it (kind, data not expanded); apply
# creates the key (New-Item -Force makes missing parents), sets the value (New-ItemProperty
# -PropertyType for a new one, Set-ItemProperty -Type for an existing one), removes the value or
# deletes the key with its subkeys. Paths are Registry::HKEY_... provider paths.
$a = $Mixop.args
$key = [string]$a.key
$name = [string]$a.name

if ($Mixop.phase -eq 'probe') {
    if (-not (Test-Path -LiteralPath $key)) { return @{ key_exists = $false } }
    $item = Get-Item -LiteralPath $key
    # -contains ignores case, as value names do.
    if (-not (@($item.GetValueNames()) -contains $name)) { return @{ key_exists = $true; value_exists = $false } }
    $data = $item.GetValue($name, $null, [Microsoft.Win32.RegistryValueOptions]::DoNotExpandEnvironmentNames)
    return @{ key_exists = $true; value_exists = $true; kind = $item.GetValueKind($name).ToString(); data = $data }
}

$p = $Mixop.plan
if ($p.delete_key) {
    Remove-Item -LiteralPath $key -Recurse -Force
    return @{ deleted = $true }
}
if ($p.create_key) { $null = New-Item -Path $key -Force }
if ($null -ne $p.set) {
    $s = $p.set
    $kind = [string]$s.kind
    # The cmdlets call the default value '(default)'.
    $valueName = $(if ([string]$s.name -eq '') { '(default)' } else { [string]$s.name })
    if ($kind -eq 'Binary' -or $kind -eq 'None') { $value = [byte[]]@($s.data) }
    elseif ($kind -eq 'DWord') { $value = [int]$s.data }
    elseif ($kind -eq 'QWord') { $value = [long]$s.data }
    elseif ($kind -eq 'MultiString') { $value = [string[]]@($s.data) }
    else { $value = [string]$s.data }
    if ($s.exists) {
        Set-ItemProperty -LiteralPath $key -Name $valueName -Value $value -Type $kind
    } else {
        $null = New-ItemProperty -LiteralPath $key -Name $valueName -Value $value -PropertyType $kind
    }
}
if ($null -ne $p.remove_value) {
    $valueName = $(if ([string]$p.remove_value -eq '') { '(default)' } else { [string]$p.remove_value })
    Remove-ItemProperty -LiteralPath $key -Name $valueName
}
return @{ key = $key }
