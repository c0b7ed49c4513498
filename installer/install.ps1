<#
.SYNOPSIS
Install mouseguard for the current user on Windows.

.DESCRIPTION
Creates an isolated venv (default %LOCALAPPDATA%\mouseguard\venv), installs PyTorch's CPU wheel
first (the default wheel is far larger and enrolment never uses a GPU), then mouseguard with the
[train] extra from the source folder this script lives in (or -From), puts a `mouseguard`
command on the user's PATH, and starts mouseguard at login (HKCU Run, with pythonw.exe so no
console window opens). No administrator rights are needed.

Only a small `mouseguard.cmd` goes on PATH, never the venv's Scripts folder: that folder holds
a python.exe that would shadow the user's own Python.

.PARAMETER From
Source folder, wheel/sdist, or URL (git+https://...) to install from.

.PARAMETER NoTrain
Runtime only: no torch/onnx/scikit-learn (enrolment then needs a model made elsewhere).

.PARAMETER NoAutostart
Do not start mouseguard at login.

.PARAMETER Python
Interpreter to build the venv with (default: the py launcher's Python 3, else python on PATH).

.PARAMETER DryRun
Print what would be run, change nothing.

.NOTES
Environment: MOUSEGUARD_VENV (venv folder), MOUSEGUARD_BIN_DIR (where mouseguard.cmd goes,
default %LOCALAPPDATA%\mouseguard\bin), MOUSEGUARD_TORCH_SPEC (pip arguments for torch instead
of the CPU index, split on spaces, e.g. "torch==2.13.0").
#>
[CmdletBinding()]
param(
    [string]$From = "",
    [switch]$NoTrain,
    [switch]$NoAutostart,
    [string]$Python = "",
    [switch]$DryRun
)

$ErrorActionPreference = "Stop"
Set-StrictMode -Version 3.0

$CpuIndex = "https://download.pytorch.org/whl/cpu"

function Say([string]$Message) { Write-Host "==> $Message" }
function Warn([string]$Message) { [Console]::Error.WriteLine("mouseguard install: warning: $Message") }
function Fail([string]$Message) {
    [Console]::Error.WriteLine("mouseguard install: $Message")
    exit 1
}

# Run a native program; PowerShell does not stop on a native program's failure by itself.
function Invoke-Step([string]$Exe, [string[]]$Arguments) {
    Write-Host "+ $Exe $($Arguments -join ' ')"
    if ($DryRun) { return }
    & $Exe @Arguments
    if ($LASTEXITCODE -ne 0) { Fail "$Exe failed (exit code $LASTEXITCODE)" }
}

# ------------------------------------------------------------------------------ the Python
function Find-Python {
    if ($Python) { return $Python }
    $candidates = @()
    if (Get-Command py -ErrorAction SilentlyContinue) { $candidates += , @("py", "-3") }
    if (Get-Command python -ErrorAction SilentlyContinue) { $candidates += , @("python") }
    foreach ($candidate in $candidates) {
        $exe = $candidate[0]
        $rest = @($candidate | Select-Object -Skip 1)
        # Ask for the real path: "python" may be the Microsoft Store alias, which prints nothing.
        # (try/catch: Windows PowerShell turns redirected native stderr into a terminating error.)
        try { $found = & $exe @rest -c "import sys; print(sys.executable)" 2>$null } catch { $found = $null }
        if ($LASTEXITCODE -eq 0 -and $found) { return ([string]($found | Select-Object -First 1)).Trim() }
    }
    Fail "no Python found; install Python 3.10 or newer from python.org, or pass -Python"
}

$PythonExe = Find-Python
& $PythonExe -c "import sys; sys.exit(sys.version_info < (3, 10))"
if ($LASTEXITCODE -ne 0) { Fail "$PythonExe is older than Python 3.10, which mouseguard needs" }

# ------------------------------------------------------------------------- what to install
$Extras = if ($NoTrain) { "" } else { "[train]" }
if (-not $From) {
    if (-not $PSScriptRoot) { Fail "run this script from its file, or give the source with -From" }
    $From = Split-Path -Parent $PSScriptRoot
    if (-not (Test-Path (Join-Path $From "pyproject.toml"))) {
        Fail "no source folder next to this script ($From); give one with -From"
    }
}
if ($From -match "://") {
    $Requirement = "mouseguard" + $Extras + " @ " + $From
} elseif (Test-Path -LiteralPath $From) {
    # A folder, wheel or sdist: pip takes "PATH[extra]" for all three.
    $Requirement = (Resolve-Path -LiteralPath $From).Path + $Extras
} else {
    Fail "-From ${From}: no such file or folder, and not a URL"
}

if ($env:MOUSEGUARD_TORCH_SPEC) {
    $TorchArgs = @($env:MOUSEGUARD_TORCH_SPEC -split "\s+" | Where-Object { $_ })
} else {
    $TorchArgs = @("torch", "--index-url", $CpuIndex)
}

$Venv = if ($env:MOUSEGUARD_VENV) { $env:MOUSEGUARD_VENV } else { Join-Path $env:LOCALAPPDATA "mouseguard\venv" }
$BinDir = if ($env:MOUSEGUARD_BIN_DIR) { $env:MOUSEGUARD_BIN_DIR } else { Join-Path $env:LOCALAPPDATA "mouseguard\bin" }
$VenvPython = Join-Path $Venv "Scripts\python.exe"
$Mouseguard = Join-Path $Venv "Scripts\mouseguard.exe"
$env:PIP_DISABLE_PIP_VERSION_CHECK = "1"

if ((Test-Path $Venv) -and -not (Test-Path (Join-Path $Venv "pyvenv.cfg")) -and (Get-ChildItem $Venv -Force | Select-Object -First 1)) {
    Fail "$Venv exists and is not a venv; set MOUSEGUARD_VENV to another folder"
}

# ---------------------------------------------------------------------------------- install
Say "Creating the venv $Venv"
Invoke-Step $PythonExe @("-m", "venv", $Venv)
Invoke-Step $VenvPython @("-m", "pip", "install", "--quiet", "--upgrade", "pip")
if (-not $NoTrain) {
    Say "Installing PyTorch ($($TorchArgs -join ' '))"
    Invoke-Step $VenvPython (@("-m", "pip", "install") + $TorchArgs)
}
Say "Installing mouseguard from $From"
Invoke-Step $VenvPython @("-m", "pip", "install", "--upgrade", $Requirement)
if (-not $DryRun) {
    & $VenvPython -c "import agent"
    if ($LASTEXITCODE -ne 0) { Fail "the installed package does not import; see the messages above" }
}

# ------------------------------------------------------------------- `mouseguard` on PATH
Say "Adding the mouseguard command to $BinDir"
$Shim = Join-Path $BinDir "mouseguard.cmd"
# %LOCALAPPDATA% instead of the literal path: cmd.exe reads batch files in the OEM code page,
# which cannot spell every user name.
$Target = $Mouseguard
if ($Target.StartsWith($env:LOCALAPPDATA, [StringComparison]::OrdinalIgnoreCase)) {
    $Target = "%LOCALAPPDATA%" + $Target.Substring($env:LOCALAPPDATA.Length)
}
Write-Host "+ write $Shim"
if (-not $DryRun) {
    New-Item -ItemType Directory -Force -Path $BinDir | Out-Null
    Set-Content -Path $Shim -Encoding Oem -Value "@`"$Target`" %*"
}
$UserPath = [Environment]::GetEnvironmentVariable("Path", "User")
if (-not $UserPath) { $UserPath = "" }
$OnPath = @($UserPath -split ";" | Where-Object { $_.TrimEnd("\") -ieq $BinDir.TrimEnd("\") }).Count -gt 0
if (-not $OnPath) {
    Write-Host "+ add $BinDir to the user's PATH"
    if (-not $DryRun) {
        $NewPath = if ($UserPath) { $UserPath.TrimEnd(";") + ";" + $BinDir } else { $BinDir }
        [Environment]::SetEnvironmentVariable("Path", $NewPath, "User")
    }
}

# ------------------------------------------------------------------------------- autostart
$Status = 0
if (-not $NoAutostart) {
    Say "Starting mouseguard at login"
    Write-Host "+ $Mouseguard autostart enable"
    if (-not $DryRun) {
        & $Mouseguard autostart enable
        if ($LASTEXITCODE -ne 0) {
            Warn "enabling autostart failed: mouseguard will not start at login until ``mouseguard autostart enable`` succeeds"
            $Status = 1
        }
    }
}

# ---------------------------------------------------------------------------------- next
Write-Host ""
Say "mouseguard is installed: $Shim"
if (-not $OnPath) { Write-Host "    Open a new terminal for the PATH change to take effect." }
if ($NoTrain) {
    Write-Host "    Runtime only (-NoTrain): enrolling needs the training extra. Re-run without -NoTrain"
    Write-Host "    to enrol here, or put a model made elsewhere into mouseguard's models folder."
} else {
    Write-Host "    Next: run  mouseguard enroll  to teach it how you move the mouse."
}
exit $Status
