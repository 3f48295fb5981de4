param($Mixop)
# Windows facts in one request: the names ansible.windows' setup module gives them.
$os = Get-CimInstance -ClassName Win32_OperatingSystem
$cs = Get-CimInstance -ClassName Win32_ComputerSystem
$ips = @(Get-CimInstance -ClassName Win32_NetworkAdapterConfiguration -Filter 'IPEnabled=True' |
    ForEach-Object { $_.IPAddress } | Where-Object { $_ -match '^\d+\.\d+\.\d+\.\d+$' })
$version = [Environment]::OSVersion.Version
$facts = @{
    ansible_hostname = [string]$env:COMPUTERNAME
    ansible_nodename = [string]$env:COMPUTERNAME
    ansible_fqdn = [string]([Net.Dns]::GetHostEntry('').HostName)
    ansible_system = 'Win32NT'
    ansible_os_family = 'Windows'
    ansible_os_name = [string]$os.Caption
    ansible_distribution = [string]$os.Caption
    ansible_distribution_version = $version.ToString()
    ansible_distribution_major_version = [string]$version.Major
    ansible_kernel = $version.ToString()
    ansible_windows_build = [int]$os.BuildNumber
    ansible_architecture = [string]$os.OSArchitecture
    ansible_processor_vcpus = [int]$cs.NumberOfLogicalProcessors
    ansible_memtotal_mb = [int]([long]$os.TotalVisibleMemorySize / 1024)
    ansible_ip_addresses = $ips
    ansible_user_id = [string]$env:USERNAME
    ansible_powershell_version = $PSVersionTable.PSVersion.Major
}
if (@($Mixop.args.gather_subset) -contains 'features') {
    $facts.ansible_windows_features = @(Get-WindowsFeature | Where-Object { $_.Installed } | ForEach-Object { [string]$_.Name })
}
return @{ ansible_facts = $facts }
