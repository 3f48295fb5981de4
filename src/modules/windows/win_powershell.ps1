param($Mixop)
# win_powershell: runs $Mixop.args.script in a runspace of its own (or, with executable, in
# another PowerShell process over its named pipe, as ansible.windows.win_powershell does) with
# $Ansible (CheckMode, Changed, Failed, Result, Diff, Tmpdir, Verbosity), the parameters and the
# sensitive parameters from $Mixop.secrets (SecureString or PSCredential), and returns every
# stream as data. Decisions about changed/failed are made in Rust (win_powershell.rs).
$a = $Mixop.args

if ($a.creates -and (Test-Path -Path ([string]$a.creates))) {
    return @{ skipped = "skipped, since $($a.creates) exists" }
}
if ($a.removes -and -not (Test-Path -Path ([string]$a.removes))) {
    return @{ skipped = "skipped, since $($a.removes) does not exist" }
}

# Check mode runs only a script that declares [CmdletBinding(SupportsShouldProcess)] (-WhatIf).
$ast = [ScriptBlock]::Create([string]$a.script).Ast
$supportsShouldProcess = $false
if ($null -ne $ast.ParamBlock) {
    foreach ($attr in $ast.ParamBlock.Attributes) {
        if ($attr.TypeName.Name -ne 'CmdletBinding') { continue }
        foreach ($named in $attr.NamedArguments) {
            if ($named.ArgumentName -eq 'SupportsShouldProcess' -and ($named.ExpressionOmitted -or $named.Argument.ToString() -eq '$true')) {
                $supportsShouldProcess = $true
            }
        }
    }
}
if ($Mixop.check_mode -and -not $supportsShouldProcess) {
    return @{ skipped = 'skipped, running in check mode'; check_mode_skip = $true }
}

$depth = [int]$a.depth
function ConvertTo-MixopData($Value) {
    # Anything deeper than depth becomes its string form, as Ansible returns it.
    if ($null -eq $Value) { return $null }
    return ConvertFrom-Json -InputObject (ConvertTo-Json -InputObject $Value -Depth $depth -Compress)
}

function Format-MixopException($Exception) {
    if ($null -eq $Exception) { return $null }
    if ($Exception -is [Management.Automation.RemoteException]) { return Format-MixopException $Exception.SerializedRemoteException }
    $type = $(if ($Exception -is [Exception]) { $Exception.GetType().FullName } else { $Exception.PSTypeNames[0] -replace '^Deserialized\.' })
    return @{
        message = $Exception.Message; type = $type; help_link = $Exception.HelpLink; source = $Exception.Source
        hresult = $Exception.HResult; inner_exception = Format-MixopException $Exception.InnerException
    }
}

function New-MixopSecureString([string]$Text) {
    $secure = New-Object System.Security.SecureString
    foreach ($c in $Text.ToCharArray()) { $secure.AppendChar($c) }
    $secure.MakeReadOnly()
    return $secure
}

$process = $null
$runspace = $null
$origOut = [Console]::Out
$origErr = [Console]::Error
try {
    if ($a.executable) {
        $start = @{ FilePath = [string]$a.executable; WindowStyle = 'Hidden'; PassThru = $true }
        if (@($a.arguments).Count -gt 0) { $start.ArgumentList = @($a.arguments) }
        $process = Start-Process @start
        $connection = New-Object -TypeName System.Management.Automation.Runspaces.NamedPipeConnectionInfo -ArgumentList $process.Id
        # A program that does not serve PowerShell's named pipe must not hang the task.
        $connection.OpenTimeout = 5000
        $runspace = [RunspaceFactory]::CreateRunspace($connection)
    } else {
        $runspace = [RunspaceFactory]::CreateRunspace()
    }
    $runspace.Open()
    $ps = [PowerShell]::Create()
    $ps.Runspace = $runspace
    $runspace.SessionStateProxy.SetVariable('Ansible', [pscustomobject]@{
        CheckMode = [bool]$Mixop.check_mode; Changed = $true; Failed = $false; Result = @{}; Diff = @{}
        Tmpdir = $env:TEMP; Verbosity = 0
    })
    $runspace.SessionStateProxy.SetVariable('ErrorActionPreference', [Management.Automation.ActionPreference][string]$a.error_action)
    if ($a.chdir) { $null = $ps.AddCommand('Set-Location').AddParameter('LiteralPath', [string]$a.chdir).AddStatement() }
    $null = $ps.AddScript([string]$a.script)

    $parameters = @{}
    if ($null -ne $a.parameters) {
        foreach ($prop in $a.parameters.PSObject.Properties) { $parameters[$prop.Name] = $prop.Value }
    }
    foreach ($s in @($Mixop.secrets.sensitive)) {
        if ($null -eq $s) { continue }
        if ($null -ne $s.username) {
            $parameters[[string]$s.name] = New-Object -TypeName System.Management.Automation.PSCredential -ArgumentList ([string]$s.username), (New-MixopSecureString ([string]$s.password))
        } else {
            $parameters[[string]$s.name] = New-MixopSecureString ([string]$s.value)
        }
    }
    if ($supportsShouldProcess) {
        $parameters.Confirm = $false
        $parameters.WhatIf = [bool]$Mixop.check_mode
    }
    if ($parameters.Count -gt 0) { $null = $ps.AddParameters($parameters) }

    # PowerShell.Invoke<T>(IEnumerable, IList<T>) keeps the output written before a terminating
    # error; it is generic, so it is called through reflection.
    $invoke = [Management.Automation.PowerShell].GetMethods() | Where-Object {
        $_.Name -eq 'Invoke' -and $_.IsGenericMethodDefinition -and $_.GetGenericArguments().Count -eq 1 -and
        $_.GetParameters().Count -eq 2 -and $_.GetParameters()[0].ParameterType -eq [Collections.IEnumerable]
    } | Select-Object -First 1
    $invoke = $invoke.MakeGenericMethod([object])
    $output = New-Object -TypeName 'System.Collections.Generic.List[object]'
    $outText = New-Object -TypeName System.IO.StringWriter
    $errText = New-Object -TypeName System.IO.StringWriter
    $terminated = $false
    try {
        [Console]::SetOut($outText)
        [Console]::SetError($errText)
        $invokeArgs = New-Object -TypeName 'object[]' -ArgumentList 2
        $invokeArgs[0] = [object[]]@()
        $invokeArgs[1] = $output
        $null = $invoke.Invoke($ps, $invokeArgs)
    } catch {
        $terminated = $true
        $ex = $_.Exception
        while (($ex -is [Reflection.TargetInvocationException] -or $ex -is [Management.Automation.MethodInvocationException]) -and $null -ne $ex.InnerException) {
            $ex = $ex.InnerException
        }
        if ($ex -is [Management.Automation.IContainsErrorRecord]) {
            $ps.Streams.Error.Add($ex.ErrorRecord)
        } else {
            $ps.Streams.Error.Add((New-Object -TypeName System.Management.Automation.ErrorRecord -ArgumentList $ex, 'ScriptHalted', 'NotSpecified', $null))
        }
    } finally {
        [Console]::SetOut($origOut)
        [Console]::SetError($origErr)
    }

    $state = $runspace.SessionStateProxy.GetVariable('Ansible')
    $errors = @(foreach ($r in $ps.Streams.Error) {
        $details = $null
        if ($null -ne $r.ErrorDetails) { $details = @{ message = $r.ErrorDetails.Message; recommended_action = $r.ErrorDetails.RecommendedAction } }
        @{
            output = ($r | Out-String).Trim()
            error_details = $details
            exception = Format-MixopException $r.Exception
            target_object = ConvertTo-MixopData $r.TargetObject
            category_info = @{
                category = [string]$r.CategoryInfo.Category; category_id = [int]$r.CategoryInfo.Category
                activity = $r.CategoryInfo.Activity; reason = $r.CategoryInfo.Reason
                target_name = $r.CategoryInfo.TargetName; target_type = $r.CategoryInfo.TargetType
            }
            fully_qualified_error_id = $r.FullyQualifiedErrorId
            script_stack_trace = $r.ScriptStackTrace
            pipeline_iteration_info = @($r.PipelineIterationInfo)
        }
    })
    # Write-Host writes information records tagged PSHOST: they are the host output here.
    $hostOut = -join @(foreach ($i in $ps.Streams.Information) {
        if ($i.Tags -contains 'PSHOST') {
            $newline = $(if ($i.MessageData.NoNewLine) { '' } else { "`r`n" })
            "$($i.MessageData)$newline"
        }
    })
    return @{
        output = @(foreach ($o in $output) { , (ConvertTo-MixopData $o) })
        error = $errors
        warning = @(foreach ($w in $ps.Streams.Warning) { $w.Message })
        verbose = @(foreach ($v in $ps.Streams.Verbose) { $v.Message })
        debug = @(foreach ($d in $ps.Streams.Debug) { $d.Message })
        information = @(foreach ($i in $ps.Streams.Information) {
            @{ message_data = ConvertTo-MixopData $i.MessageData; source = $i.Source; time_generated = $i.TimeGenerated.ToUniversalTime().ToString('o'); tags = @($i.Tags) }
        })
        host_out = $hostOut + $outText.ToString()
        host_err = $errText.ToString()
        result = ConvertTo-MixopData $state.Result
        changed = [bool]$state.Changed
        failed = [bool]$state.Failed
        terminated = $terminated
        diff = ConvertTo-MixopData $state.Diff
    }
} finally {
    [Console]::SetOut($origOut)
    [Console]::SetError($origErr)
    if ($null -ne $runspace) { $runspace.Dispose() }
    if ($null -ne $process) { $process | Stop-Process -Force }
}
