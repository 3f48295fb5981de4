# The one wrapper every mixop Windows module script runs in (docs/windows-protocol.md).
# Requests and answers are frames: "MIXOP1 <KIND> <id> <length>" and a base64 line of UTF-8 JSON.
param($MixopIn, $MixopUtf8)
$ErrorActionPreference = 'Stop'
$ProgressPreference = 'SilentlyContinue'
$MixopOut = New-Object System.IO.StreamWriter([Console]::OpenStandardOutput(), $MixopUtf8)
$MixopOut.NewLine = "`n"
$MixopOut.AutoFlush = $true

function Write-MixopFrame([string]$Kind, [long]$Id, $Payload) {
    $json = ConvertTo-Json -InputObject $Payload -Depth 32 -Compress
    $b64 = [Convert]::ToBase64String($MixopUtf8.GetBytes($json))
    $MixopOut.Write("MIXOP1 $Kind $Id $($b64.Length)`n$b64`n")
}

# Reads one request frame; $null at the end of input. Lines that are not frames are skipped.
function Read-MixopFrame {
    while ($true) {
        $header = $MixopIn.ReadLine()
        if ($null -eq $header) { return $null }
        $parts = $header.TrimEnd("`r").Split(' ')
        if ($parts.Count -ne 4 -or $parts[0] -ne 'MIXOP1' -or $parts[1] -ne 'REQ') { continue }
        $id = [long]$parts[2]
        $payload = $MixopIn.ReadLine()
        if ($null -eq $payload) { return $null }
        $payload = $payload.TrimEnd("`r")
        try {
            if ($payload.Length -ne [int]$parts[3]) { throw "frame length $($payload.Length), header says $($parts[3])" }
            $req = ConvertFrom-Json -InputObject $MixopUtf8.GetString([Convert]::FromBase64String($payload))
            return @{ id = $id; req = $req }
        } catch {
            return @{ id = $id; bad = $_.Exception.Message }
        }
    }
}

function Invoke-MixopRequest($Id, $Req) {
    $clock = [Diagnostics.Stopwatch]::StartNew()
    $savedEnv = @{}
    $location = Get-Location
    try {
        if ($null -ne $Req.env) {
            foreach ($p in $Req.env.PSObject.Properties) {
                $savedEnv[$p.Name] = [Environment]::GetEnvironmentVariable($p.Name, 'Process')
                [Environment]::SetEnvironmentVariable($p.Name, [string]$p.Value, 'Process')
            }
        }
        $Mixop = [pscustomobject]@{
            module = $Req.module; phase = $Req.phase; args = $Req.args; plan = $Req.plan
            check_mode = [bool]$Req.check_mode; secrets = $Req.secrets
        }
        $block = [ScriptBlock]::Create([string]$Req.script)
        $all = @(& $block $Mixop 3>&1)
        $warnings = @($all | Where-Object { $_ -is [System.Management.Automation.WarningRecord] } | ForEach-Object { $_.Message })
        $output = @($all | Where-Object { $_ -isnot [System.Management.Automation.WarningRecord] })
        $result = $null
        if ($output.Count -gt 0) { $result = $output[$output.Count - 1] }
        return @{ id = $Id; ok = $true; result = $result; warnings = $warnings; duration_ms = $clock.ElapsedMilliseconds }
    } catch {
        $e = $_
        $inv = $e.InvocationInfo
        $line = ''
        if ($null -ne $inv -and $null -ne $inv.Line) { $line = $inv.Line.Trim() }
        return @{
            id = $Id; ok = $false; failed = $true
            msg = $e.Exception.Message
            exception = $e.Exception.GetType().FullName
            category = [string]$e.CategoryInfo.Category
            line = $(if ($null -ne $inv) { $inv.ScriptLineNumber } else { 0 })
            column = $(if ($null -ne $inv) { $inv.OffsetInLine } else { 0 })
            script_line = $line
            error_id = [string]$e.FullyQualifiedErrorId
            duration_ms = $clock.ElapsedMilliseconds
        }
    } finally {
        Set-Location -LiteralPath $location.Path
        foreach ($k in $savedEnv.Keys) { [Environment]::SetEnvironmentVariable($k, $savedEnv[$k], 'Process') }
    }
}

function Invoke-MixopFrame($Frame) {
    if ($null -ne $Frame.bad) {
        return @{ id = $Frame.id; ok = $false; failed = $true; msg = "bad request frame: $($Frame.bad)"; exception = 'mixop.BadRequest' }
    }
    return Invoke-MixopRequest $Frame.id $Frame.req
}
