//! What each thread of this process has cost so far, from /proc/self/task: CPU time and run
//! count from `schedstat` (exact, not sampled at ticks) and the context switches from `status`.
//! A voluntary switch is the thread going to sleep, so each is one wake-up.

use std::collections::BTreeMap;

#[derive(Debug, Clone, Default)]
pub struct ThreadSample {
    pub name: String,
    pub cpu_ns: u64,
    /// Times the thread was put on a CPU (schedstat's third field).
    pub timeslices: u64,
    pub voluntary: u64,
    pub nonvoluntary: u64,
}

/// Every thread of this process now, by thread id.
pub fn sample() -> BTreeMap<u32, ThreadSample> {
    let mut out = BTreeMap::new();
    let Ok(dir) = std::fs::read_dir("/proc/self/task") else {
        return out;
    };
    for entry in dir.flatten() {
        let Ok(tid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let read = |f: &str| std::fs::read_to_string(entry.path().join(f)).unwrap_or_default();
        let sched: Vec<u64> = read("schedstat")
            .split_whitespace()
            .filter_map(|v| v.parse().ok())
            .collect();
        let status = read("status");
        let field = |name: &str| proc_field(&status, name);
        out.insert(
            tid,
            ThreadSample {
                name: read("comm").trim().to_owned(),
                cpu_ns: sched.first().copied().unwrap_or(0),
                timeslices: sched.get(2).copied().unwrap_or(0),
                voluntary: field("voluntary_ctxt_switches:"),
                nonvoluntary: field("nonvoluntary_ctxt_switches:"),
            },
        );
    }
    out
}

/// The number on the line of `text` that starts with `name` (a /proc file of `Name: value`
/// lines: `status`, `smaps_rollup`), 0 where there is none.
pub fn proc_field(text: &str, name: &str) -> u64 {
    text.lines()
        .find(|l| l.starts_with(name))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// What a set of threads did between two samples. Threads that ended in between are not
/// counted (the plugin's threads live as long as its sources).
#[derive(Debug, Clone, Default)]
pub struct Usage {
    pub cpu_s: f64,
    pub timeslices: u64,
    pub voluntary: u64,
    pub nonvoluntary: u64,
    pub threads: usize,
}

pub fn usage(
    before: &BTreeMap<u32, ThreadSample>,
    after: &BTreeMap<u32, ThreadSample>,
    mut counted: impl FnMut(&str) -> bool,
) -> Usage {
    let mut u = Usage::default();
    for (tid, t) in after.iter().filter(|(_, t)| counted(&t.name)) {
        // A thread id reused by a new thread starts from zero.
        let t0 = before
            .get(tid)
            .filter(|b| b.name == t.name)
            .cloned()
            .unwrap_or_default();
        u.cpu_s += t.cpu_ns.saturating_sub(t0.cpu_ns) as f64 / 1e9;
        u.timeslices += t.timeslices.saturating_sub(t0.timeslices);
        u.voluntary += t.voluntary.saturating_sub(t0.voluntary);
        u.nonvoluntary += t.nonvoluntary.saturating_sub(t0.nonvoluntary);
        u.threads += 1;
    }
    u
}

/// The plugin's own threads: all are named `psn-…` (network runtime, playout, pumps); psn-sim's
/// runtime in the bench is `sim-rt`.
pub fn is_plugin_thread(name: &str) -> bool {
    name.starts_with("psn-")
}
