//! The named checks of a `harness = false` test (the libobs tests own their `main`: libobs is
//! one global per process), printed cargo-like, and the small helpers the checks use.

use std::time::{Duration, Instant};

/// Waits until `cond` holds or `limit` passes; returns how long it took.
pub fn wait_for(limit: Duration, mut cond: impl FnMut() -> bool) -> Option<Duration> {
    let start = Instant::now();
    while start.elapsed() < limit {
        if cond() {
            return Some(start.elapsed());
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    cond().then(|| start.elapsed())
}

/// Runs named checks in order and prints a cargo-like summary.
#[derive(Default)]
pub struct Runner {
    passed: usize,
    failed: Vec<String>,
    filter: Option<String>,
}

impl Runner {
    pub fn new() -> Self {
        let filter = std::env::args().skip(1).find(|a| !a.starts_with('-'));
        Runner {
            filter,
            ..Default::default()
        }
    }

    /// Runs a check unless a name filter was given on the command line and
    /// does not match.
    pub fn run(&mut self, name: &str, check: impl FnOnce() -> Result<(), String>) {
        if self.filter.as_deref().is_some_and(|f| !name.contains(f)) {
            return;
        }
        self.run_always(name, check);
    }

    /// Runs a check that the others depend on, whatever the filter.
    pub fn run_always(&mut self, name: &str, check: impl FnOnce() -> Result<(), String>) {
        let start = Instant::now();
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(check))
            .unwrap_or_else(|_| Err("panicked".into()));
        match result {
            Ok(()) => {
                self.passed += 1;
                println!(
                    "test {name} ... ok ({:.1} s)",
                    start.elapsed().as_secs_f64()
                );
            }
            Err(why) => {
                println!("test {name} ... FAILED: {why}");
                self.failed.push(name.to_owned());
            }
        }
    }

    /// Prints the summary and exits non-zero on any failure.
    pub fn finish(self) -> ! {
        println!();
        println!("{} passed, {} failed", self.passed, self.failed.len());
        for name in &self.failed {
            println!("    failed: {name}");
        }
        std::process::exit(if self.failed.is_empty() { 0 } else { 1 });
    }
}

/// Fails with `message` unless `cond`.
pub fn ensure(cond: bool, message: impl FnOnce() -> String) -> Result<(), String> {
    if cond {
        Ok(())
    } else {
        Err(message())
    }
}
