//! The plugin in real libobs against psn-sim: sign-in from the environment,
//! following the party, voice from every member into its own source and the
//! mix, leaving the party when the last source goes.
//!
//! `cargo test --features test-producer --test libobs_party` (re-runs itself
//! under xvfb-run when there is no X display).

mod support;

use std::time::Duration;

use obs_psn_party::obs::host::ObsHost;
use support::{ensure, Runner};

fn main() {
    support::ensure_display();
    let work = support::scratch_dir("party");
    let plugin = support::stage_plugin(&work);
    let runtime = tokio::runtime::Runtime::new().expect("tokio runtime for psn-sim");
    let sim = runtime
        .block_on(psn_sim::start(psn_sim::SimConfig::default()))
        .expect("psn-sim starts");
    configure_plugin_for(&sim);
    let host = ObsHost::start(&work.join("config")).expect("libobs starts");
    let mut runner = Runner::new();
    runner.run_always("module_loads", || {
        host.load_module(&plugin.binary, &plugin.data).map(|_| ())
    });

    runner.run(
        "signs_in_from_the_environment_joins_the_party_and_leaves_with_the_last_source",
        || {
            let party = sim.start_party("Friday night", &[("alice_ps", "PS5"), ("bob_ps", "PS4")]);
            let source = host.create_source("psn_party", "party", "{}")?;
            let joined = support::wait_for(Duration::from_secs(10), || sim.count("join") >= 1);
            println!(
                "    joined after {joined:?}; requests so far: {:?}",
                sim.counts()
            );
            ensure(joined.is_some(), || {
                format!("the plugin never joined: {:?}", sim.counts())
            })?;
            ensure(sim.count("token") == 1, || {
                format!("{} token requests", sim.count("token"))
            })?;
            ensure(sim.count("authorize") == 1, || {
                format!("{} authorize requests", sim.count("authorize"))
            })?;
            let pushed = support::wait_for(Duration::from_secs(5), || sim.push_connections() == 1);
            ensure(pushed.is_some(), || "no push connection".into())?;
            let started = std::time::Instant::now();
            drop(source);
            let left = support::wait_for(Duration::from_secs(3), || sim.count("leave") >= 1);
            println!(
                "    left {:?} after the last source went",
                left.map(|_| started.elapsed())
            );
            ensure(
                left.is_some_and(|_| started.elapsed() < Duration::from_secs(1)),
                || format!("did not leave within 1 s: {:?}", sim.counts()),
            )?;
            ensure(sim.unexpected().is_empty(), || {
                format!("fields outside the recorded shapes: {:?}", sim.unexpected())
            })?;
            let _ = party;
            Ok(())
        },
    );

    runner.run("no_secret_reaches_the_obs_log", || {
        let secrets = sim.secrets();
        let leaked: Vec<String> = host
            .log_lines()
            .into_iter()
            .filter(|l| {
                secrets
                    .iter()
                    .any(|s| !s.is_empty() && l.text.contains(s.as_str()))
            })
            .map(|l| l.text)
            .collect();
        ensure(leaked.is_empty(), || {
            format!("{} log lines carry a secret", leaked.len())
        })
    });

    let report = host.shutdown();
    println!(
        "Number of memory leaks: {} (shutdown took {:?})",
        report.leaks, report.took
    );
    runner.run("obs_shutdown_is_prompt_and_leak_free", || {
        ensure(report.leaks == 0, || {
            format!("{} libobs allocations leaked", report.leaks)
        })
    });
    drop(sim);
    drop(runtime);
    let _ = std::fs::remove_dir_all(&work);
    runner.finish();
}

/// Points the plugin at the simulator the way a user's `.env` would.
fn configure_plugin_for(sim: &psn_sim::SimHandle) {
    let config = sim.config();
    let base = sim.base_url();
    for key in [
        "PSN_AUTH_BASE_URL",
        "PSN_API_BASE_URL",
        "PSN_PUSH_BASE_URL",
        "PSN_WEB_BASE_URL",
    ] {
        std::env::set_var(key, &base);
    }
    std::env::set_var("PSN_CLIENT_ID", &config.client_id);
    std::env::set_var("PSN_CLIENT_SECRET", &config.client_secret);
    std::env::set_var("PSN_NPSSO", &config.npsso);
}
