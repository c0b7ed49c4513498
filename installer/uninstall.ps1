<#
.SYNOPSIS
Uninstall mouseguard for the current user on Windows.

.DESCRIPTION
Stops a running agent, turns autostart off, removes the venv and the `mouseguard` command.
The user's models, recordings, configuration and logs stay unless -Purge is given: a model is
the product of half an hour of enrolment, and a reinstall should find it again.

.PARAMETER Purge
Also delete models, recordings, configuration, logs and state.

.PARAMETER Yes
Do not ask before -Purge deletes anything.

.PARAMETER DryRun
Print what would be removed, change nothing.
#>
[CmdletBinding()]
param(
    [switch]$Purge,
    [switch]$Yes,
    [switch]$DryRun
)

$ErrorActionPreference = "Stop"
Set-StrictMode -Version 3.0

$RunKey = "HKCU:\Software\Microsoft\Windows\CurrentVersion\Run"

function Say([string]$Message) { Write-Host "==> $Message" }
function Warn([string]$Message) { [Console]::Error.WriteLine("mouseguard uninstall: warning: $Message") }
function Fail([string]$Message) {
    [Console]::Error.WriteLine("mouseguard uninstall: $Message")
    exit 1
}
function Remove-Path([string]$Path) {
    Write-Host "+ remove $Path"
    if (-not $DryRun) { Remove-Item -LiteralPath $Path -Recurse -Force }
}

$Venv = if ($env:MOUSEGUARD_VENV) { $env:MOUSEGUARD_VENV } else { Join-Path $env:LOCALAPPDATA "mouseguard\venv" }
$BinDir = if ($env:MOUSEGUARD_BIN_DIR) { $env:MOUSEGUARD_BIN_DIR } else { Join-Path $env:LOCALAPPDATA "mouseguard\bin" }
$VenvPython = Join-Path $Venv "Scripts\python.exe"
$Mouseguard = Join-Path $Venv "Scripts\mouseguard.exe"
$Installed = Test-Path $VenvPython

# Ask the agent itself (its paths module is the one source of truth) before its venv goes.
function Invoke-Agent([string]$Code) {
    if (-not $Installed) { return $null }
    try { $out = & $VenvPython -c $Code 2>$null } catch { return $null }
    if ($LASTEXITCODE -ne 0) { return $null }
    return $out
}

# -------------------------------------------------------------- where the user's files are
$Where = @{}
# (One line, single quotes only: Windows PowerShell mangles double quotes in native arguments.)
$Lines = Invoke-Agent "from agent import paths; [print(f'{role}\t{folder}') for role, folder in paths.all_dirs().items()]"
foreach ($line in @($Lines)) {
    if ($line -and $line.Contains("`t")) {
        $role, $folder = $line -split "`t", 2
        $Where[$role] = $folder
    }
}
if ($Where.Count -eq 0) {
    # No working install left to ask: the same defaults the agent would use.
    if ($env:MOUSEGUARD_HOME) {
        $Base = $env:MOUSEGUARD_HOME
        $Where = @{ config = "$Base\config"; data = "$Base\data"; logs = "$Base\logs"; state = "$Base\state" }
    } else {
        $Base = Join-Path $env:LOCALAPPDATA "mouseguard"
        $Where = @{ config = $Base; data = $Base; logs = "$Base\Logs"; state = $Base }
    }
    $Where["models"] = Join-Path $Where["data"] "models"
    $Where["recordings"] = Join-Path $Where["data"] "recordings"
}

# -------------------------------------------------------------------- stop a running agent
$AgentPid = Invoke-Agent "from agent import instance, paths; print(instance.running_pid(paths.lock_file()) or '')"
if ($AgentPid -and ([string]$AgentPid).Trim()) {
    $AgentPid = [int]([string]$AgentPid).Trim()
    Say "Stopping the running agent (pid $AgentPid)"
    if (-not $DryRun) {
        Stop-Process -Id $AgentPid -Force -ErrorAction SilentlyContinue
        Wait-Process -Id $AgentPid -Timeout 5 -ErrorAction SilentlyContinue
    }
}

# ------------------------------------------------------------------------------- autostart
Say "Turning autostart off"
$Disabled = $false
if (Test-Path $Mouseguard) {
    Write-Host "+ $Mouseguard autostart disable"
    if ($DryRun) { $Disabled = $true } else {
        & $Mouseguard autostart disable
        $Disabled = ($LASTEXITCODE -eq 0)
    }
}
if (-not $Disabled) {
    # Nothing left to ask: remove the value where the autostart module puts it.
    Write-Host "+ remove $RunKey\mouseguard"
    if (-not $DryRun) { Remove-ItemProperty -Path $RunKey -Name "mouseguard" -ErrorAction SilentlyContinue }
}

# ------------------------------------------------------------------------ program and command
if (Test-Path $Venv) {
    if (-not (Test-Path (Join-Path $Venv "pyvenv.cfg"))) { Fail "$Venv is not a venv; not removing it" }
    Say "Removing $Venv"
    Remove-Path $Venv
} else {
    Say "No venv at $Venv"
}
$Shim = Join-Path $BinDir "mouseguard.cmd"
if (Test-Path $Shim) { Remove-Path $Shim }
if ((Test-Path $BinDir) -and -not (Get-ChildItem $BinDir -Force | Select-Object -First 1)) {
    Remove-Path $BinDir
    $UserPath = [Environment]::GetEnvironmentVariable("Path", "User")
    if ($UserPath) {
        $Kept = @($UserPath -split ";" | Where-Object { $_ -and ($_.TrimEnd("\") -ine $BinDir.TrimEnd("\")) })
        if ($Kept.Count -ne @($UserPath -split ";" | Where-Object { $_ }).Count) {
            Write-Host "+ remove $BinDir from the user's PATH"
            if (-not $DryRun) { [Environment]::SetEnvironmentVariable("Path", ($Kept -join ";"), "User") }
        }
    }
}

# ------------------------------------------------------------------------ the user's files
function Test-OurFolder([string]$Path) {
    # Refuse anything that is not plainly mouseguard's own folder.
    if (-not $Path -or $Path -eq $HOME -or $Path -eq $env:LOCALAPPDATA -or $Path.Length -le 3) { return $false }
    if ($Path -match "mouseguard") { return $true }
    if ($env:MOUSEGUARD_HOME -and $Path.StartsWith($env:MOUSEGUARD_HOME + "\", [StringComparison]::OrdinalIgnoreCase)) { return $true }
    return $false
}

if ($Purge) {
    $Targets = @()
    foreach ($role in @("config", "data", "logs", "state")) {
        $folder = $Where[$role]
        if (-not $folder -or -not (Test-Path $folder) -or ($Targets -contains $folder)) { continue }
        if (Test-OurFolder $folder) { $Targets += $folder } else { Warn "not deleting ${folder}: not a mouseguard folder" }
    }
    if ($Targets.Count -eq 0) {
        Say "No models, recordings, configuration or logs to delete"
    } else {
        if (-not $Yes -and [Environment]::UserInteractive -and -not [Console]::IsInputRedirected) {
            Write-Host "Delete these, including every enrolled model and recording?"
            $Targets | ForEach-Object { Write-Host "    $_" }
            $Answer = Read-Host "[y/N]"
            if ($Answer -notmatch "^(y|yes)$") { Fail "nothing deleted" }
        }
        Say "Deleting models, recordings, configuration and logs"
        # Logs may sit inside the data folder; remove the deepest first and skip what is gone.
        foreach ($folder in ($Targets | Sort-Object Length -Descending)) {
            if (Test-Path $folder) { Remove-Path $folder }
        }
    }
} else {
    Write-Host ""
    Say "mouseguard is uninstalled. Your files are kept:"
    foreach ($role in @("models", "recordings", "config", "logs")) {
        Write-Host ("    {0,-11} {1}" -f $role, $Where[$role])
    }
    Write-Host "    Delete them with: $PSCommandPath -Purge"
}
