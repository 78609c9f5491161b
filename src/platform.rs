//! The little that differs between operating systems, kept in one place so a port to Windows or
//! macOS touches only this file, `build.rs` and the packaging (docs/porting.md).

use std::fs::OpenOptions;

/// Sets the permission bits a new file is created with (`0o600`: only the user may read it).
/// On Windows there are no such bits: the plugin's config folder under `%APPDATA%` is already
/// private to the user, so nothing is set there.
pub fn set_create_mode(options: &mut OpenOptions, mode: u32) -> &mut OpenOptions {
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(mode)
    }
    #[cfg(not(unix))]
    {
        let _ = mode;
        options
    }
}

/// The permission bits of a file when other users (group or others) may read it, else `None`.
/// On Windows the config folder is private to the user, so never.
pub fn readable_by_others(metadata: &std::fs::Metadata) -> Option<u32> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = metadata.permissions().mode() & 0o777;
        (mode & 0o044 != 0).then_some(mode)
    }
    #[cfg(not(unix))]
    {
        let _ = metadata;
        None
    }
}
