//! Raises the priority of the plugin's audio threads (the delivery thread and
//! the playout clock) where an unprivileged process may: a streaming PC is
//! busy by nature, and a late audio thread is a timestamp gap.
//!
//! - Windows: `THREAD_PRIORITY_HIGHEST`, which any process may set for its own
//!   threads. Not TIME_CRITICAL: OBS's own audio and video threads must still
//!   get their turn, and our work per wake is short.
//! - Linux: a lower nice value only if RLIMIT_NICE allows it (it does not by
//!   default; real-time scheduling needs RLIMIT_RTPRIO or rtkit, which we do
//!   not ask for). The attempt costs one system call; failing changes nothing.
//! - Elsewhere: nothing.

/// The nice value asked for on Linux (only granted where RLIMIT_NICE allows).
#[cfg(target_os = "linux")]
const LINUX_NICE: i32 = -10;

/// Raises the calling thread's priority if the platform lets us; says so in
/// the debug log either way.
pub fn raise_current_audio_thread() {
    #[cfg(target_os = "linux")]
    {
        extern "C" {
            fn setpriority(which: u32, who: u32, prio: i32) -> i32;
        }
        const PRIO_PROCESS: u32 = 0;
        // SAFETY: a plain system call; on Linux `who` 0 with PRIO_PROCESS is
        // the calling thread only (each thread has its own nice value).
        let result = unsafe { setpriority(PRIO_PROCESS, 0, LINUX_NICE) };
        if result == 0 {
            log::debug!("audio thread runs at nice {LINUX_NICE}");
        } else {
            log::debug!(
                "audio thread keeps its priority (nice {LINUX_NICE} not allowed: {})",
                std::io::Error::last_os_error()
            );
        }
    }
    #[cfg(windows)]
    {
        #[link(name = "kernel32")]
        extern "system" {
            fn GetCurrentThread() -> *mut core::ffi::c_void;
            fn SetThreadPriority(thread: *mut core::ffi::c_void, priority: i32) -> i32;
        }
        const THREAD_PRIORITY_HIGHEST: i32 = 2;
        // SAFETY: the pseudo handle of the calling thread, valid for the call.
        let ok = unsafe { SetThreadPriority(GetCurrentThread(), THREAD_PRIORITY_HIGHEST) } != 0;
        log::debug!("audio thread priority HIGHEST: {ok}");
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    /// This thread's nice value, from /proc.
    fn nice() -> i32 {
        let stat = std::fs::read_to_string("/proc/thread-self/stat").unwrap();
        // Fields after the command's closing parenthesis; nice is field 19.
        let after = stat.rsplit(')').next().unwrap();
        after.split_whitespace().nth(16).unwrap().parse().unwrap()
    }

    #[test]
    fn the_priority_is_raised_where_allowed_and_left_alone_elsewhere() {
        std::thread::spawn(|| {
            let before = nice();
            super::raise_current_audio_thread();
            let after = nice();
            println!("nice {before} -> {after}");
            assert!(
                after == super::LINUX_NICE || after == before,
                "nice {before} -> {after}"
            );
        })
        .join()
        .unwrap();
        // Only that thread: this one keeps its own.
        assert_ne!(nice(), super::LINUX_NICE);
    }
}
