; The Windows installer of obs-psn-party (NSIS; tools/windows/package.sh runs makensis).
; Installs for every user into OBS 30+'s per-machine plugin folder:
;   %ProgramData%\obs-studio\plugins\obs-psn-party\bin\64bit\obs-psn-party.dll
;   %ProgramData%\obs-studio\plugins\obs-psn-party\data\...
; and registers an uninstaller (Apps & features). Silent: /S (install and uninstall).
; Defined on the command line: VERSION, STAGE (the laid-out folder), OUTFILE.
Unicode true
SetCompressor /SOLID lzma
RequestExecutionLevel admin
!include "LogicLib.nsh"
!include "x64.nsh"

!define NAME "obs-psn-party"
!define DISPLAY "PSN Party for OBS Studio"
!define UNINSTALL_KEY "Software\Microsoft\Windows\CurrentVersion\Uninstall\${NAME}"

Name "${DISPLAY} ${VERSION}"
OutFile "${OUTFILE}"
; $INSTDIR is set in .onInit: the folder comes from the system, not from a constant.
InstallDir ""
ShowInstDetails show
ShowUninstDetails show

Page license
Page instfiles
UninstPage uninstConfirm
UninstPage instfiles
LicenseData "${STAGE}\LICENSE.txt"

Function .onInit
  ${IfNot} ${RunningX64}
    MessageBox MB_OK|MB_ICONSTOP "${DISPLAY} needs 64-bit Windows." /SD IDOK
    Abort
  ${EndIf}
  SetShellVarContext all
  StrCpy $INSTDIR "$APPDATA\obs-studio\plugins\${NAME}"
FunctionEnd

Function un.onInit
  SetShellVarContext all
  StrCpy $INSTDIR "$APPDATA\obs-studio\plugins\${NAME}"
FunctionEnd

Section "Plugin" main
  SetOutPath "$INSTDIR\bin\64bit"
  File "${STAGE}\obs-psn-party\bin\64bit\obs-psn-party.dll"
  SetOutPath "$INSTDIR\data"
  File /r "${STAGE}\obs-psn-party\data\*.*"
  SetOutPath "$INSTDIR"
  WriteUninstaller "$INSTDIR\uninstall.exe"
  SetRegView 64
  WriteRegStr HKLM "${UNINSTALL_KEY}" "DisplayName" "${DISPLAY}"
  WriteRegStr HKLM "${UNINSTALL_KEY}" "DisplayVersion" "${VERSION}"
  WriteRegStr HKLM "${UNINSTALL_KEY}" "Publisher" "obs-psn-party"
  WriteRegStr HKLM "${UNINSTALL_KEY}" "InstallLocation" "$INSTDIR"
  WriteRegStr HKLM "${UNINSTALL_KEY}" "UninstallString" '"$INSTDIR\uninstall.exe"'
  WriteRegStr HKLM "${UNINSTALL_KEY}" "QuietUninstallString" '"$INSTDIR\uninstall.exe" /S'
  WriteRegDWORD HKLM "${UNINSTALL_KEY}" "NoModify" 1
  WriteRegDWORD HKLM "${UNINSTALL_KEY}" "NoRepair" 1
SectionEnd

; Removes what the installer put there, by name: never the whole tree blindly, and never the
; user's config (%APPDATA%\obs-studio\plugin_config\obs-psn-party holds the sign-in).
Section "Uninstall"
  Delete "$INSTDIR\bin\64bit\obs-psn-party.dll"
  RMDir "$INSTDIR\bin\64bit"
  RMDir "$INSTDIR\bin"
  RMDir /r "$INSTDIR\data"
  Delete "$INSTDIR\uninstall.exe"
  RMDir "$INSTDIR"
  SetRegView 64
  DeleteRegKey HKLM "${UNINSTALL_KEY}"
SectionEnd
