//! Figures of this process, read from /proc.

/// Threads of this process right now.
pub fn thread_count() -> usize {
    std::fs::read_dir("/proc/self/task")
        .map(|d| d.count())
        .unwrap_or(0)
}

/// Resident memory of this process in KiB.
pub fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

/// One of the plugin's threads (`psn-*`), with its counters from /proc.
pub struct ThreadSample {
    pub tid: u32,
    pub name: String,
    /// Times it went to sleep of its own accord (a wake-up each).
    pub voluntary_switches: u64,
    /// CPU time, ns (schedstat).
    pub cpu_ns: u64,
}

/// The plugin's threads right now (names starting `psn-`).
pub fn plugin_threads() -> Vec<ThreadSample> {
    let mut out = Vec::new();
    let Ok(dir) = std::fs::read_dir("/proc/self/task") else {
        return out;
    };
    for entry in dir.flatten() {
        let tid = entry.file_name().to_string_lossy().parse().unwrap_or(0);
        let name = std::fs::read_to_string(entry.path().join("comm")).unwrap_or_default();
        let name = name.trim().to_owned();
        if !name.starts_with("psn-") {
            continue;
        }
        let status = std::fs::read_to_string(entry.path().join("status")).unwrap_or_default();
        let voluntary_switches = status
            .lines()
            .find_map(|l| l.strip_prefix("voluntary_ctxt_switches:"))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0);
        let cpu_ns = std::fs::read_to_string(entry.path().join("schedstat"))
            .ok()
            .and_then(|s| s.split_whitespace().next().and_then(|v| v.parse().ok()))
            .unwrap_or(0);
        out.push(ThreadSample {
            tid,
            name,
            voluntary_switches,
            cpu_ns,
        });
    }
    out
}

/// Wake-ups per second and CPU % of a core per thread name between two samples `seconds`
/// apart, and the total: lines to print.
pub fn thread_usage(before: &[ThreadSample], after: &[ThreadSample], seconds: f64) -> Vec<String> {
    let mut by_name: std::collections::BTreeMap<&str, (usize, u64, u64)> = Default::default();
    for t in after {
        let (switches, cpu) = before
            .iter()
            .find(|b| b.tid == t.tid)
            .map_or((0, 0), |b| (b.voluntary_switches, b.cpu_ns));
        let entry = by_name.entry(&t.name).or_default();
        entry.0 += 1;
        entry.1 += t.voluntary_switches.saturating_sub(switches);
        entry.2 += t.cpu_ns.saturating_sub(cpu);
    }
    let mut lines = Vec::new();
    let (mut wakes, mut cpu) = (0, 0);
    for (name, (count, w, c)) in &by_name {
        wakes += w;
        cpu += c;
        lines.push(format!(
            "{name} x{count}: {:.0} wake-ups/s, {:.2} % of a core",
            *w as f64 / seconds,
            *c as f64 / seconds / 1e7
        ));
    }
    lines.push(format!(
        "plugin threads in all: {:.0} wake-ups/s, {:.2} % of a core",
        wakes as f64 / seconds,
        cpu as f64 / seconds / 1e7
    ));
    lines
}
