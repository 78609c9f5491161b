//! The properties dialog in real libobs against psn-sim: what the dialog
//! holds, signing in by the "Sign in" button with the simulator's NPSSO,
//! the party and member lists, consent (a disallowed member is silent in the
//! mix and in their own source), a scene-collection save that holds no
//! secret, a second OBS start that signs in from the token store alone, and
//! "Sign out".
//!
//! `cargo test --features test-producer --test libobs_properties` (re-runs
//! itself under xvfb-run when there is no X display). The second start is
//! this same program in a new process (`--second-start <work dir>`).

mod support;

use std::cell::{Ref, RefCell};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use obs_psn_party::audio::analysis::tone_dbfs;
use obs_psn_party::obs::host::{HostSource, ObsHost};
use psn_sim::voice::MemberSpec;
use support::libobs::{account_of, plugin_log, tone_member, LibobsRun, RATE};
use support::{ensure, Runner};

const NAMES: [&str; 4] = ["ann_ps", "ben_ps", "cat_ps", "dan_ps"];
/// Not harmonically related: psn-sim's voices carry weak harmonics.
const TONES: [f64; 4] = [300.0, 470.0, 730.0, 1030.0];

fn main() {
    support::ensure_display();
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--second-start") {
        second_start(Path::new(&args[i + 1]));
    }
    let run = LibobsRun::prepare("properties");
    let work = run.work.clone();
    let sim = run.start_sim(psn_sim::SimConfig::default());
    // Only where PSN is: the client credentials come from the dialog's
    // Advanced group and the NPSSO from its Account group.
    for (key, _) in sim.plugin_env() {
        if !key.ends_with("_BASE_URL") {
            std::env::remove_var(key);
        }
    }
    let config = sim.config();
    let mut runner = Runner::new();
    let host = run.start_host_with_plugin(&mut runner);

    let specs: Vec<MemberSpec> = NAMES
        .iter()
        .zip(TONES)
        .map(|(name, hz)| tone_member(name, hz))
        .collect();
    let party = sim.start_party_with("Properties night", &specs);
    let account_of = |name: &str| account_of(&party, name);

    let mut first_mix = host
        .create_source("psn_party", "PSN Party", "{}")
        .expect("psn_party");
    first_mix.set_output_channel(1);
    let mix_audio = first_mix.start_capture();
    let mut first_ann = host
        .create_source("psn_party_member", "Ann", r#"{"member": "slot:1"}"#)
        .expect("psn_party_member");
    let ann_audio = first_ann.start_capture();
    // The second start closes these and opens a new one.
    let mix_cell = RefCell::new(Some(first_mix));
    let ann_cell = RefCell::new(Some(first_ann));
    let mix = || Ref::map(mix_cell.borrow(), |m| m.as_ref().expect("the mix source"));
    let ann = || Ref::map(ann_cell.borrow(), |m| m.as_ref().expect("ann's source"));

    runner.run_always("signed_out_dialog_has_every_group", || {
        let names = mix().all_property_names();
        println!("    {names:?}");
        for want in [
            "account/account_status",
            "account/npsso",
            "account/npsso_hint",
            "account/sign_in",
            "party_group/party",
            "party_group/refresh_parties",
            "party_group/party_link",
            "party_group/join_link",
            "members/only_allowed_members",
            "members/include_own_console",
            "audio/sync_offset_ms",
            "audio/jitter",
            "advanced/client_id",
            "advanced/client_secret",
            "advanced/stun_servers",
            "advanced/network_test",
            "advanced/network_result",
        ] {
            ensure(names.iter().any(|n| n == want), || {
                format!("no {want} in {names:?}")
            })?;
        }
        let status = mix()
            .property_description("account_status")
            .unwrap_or_default();
        ensure(status.starts_with("Not signed in"), || {
            format!("account status: {status}")
        })?;
        let member = ann().property_description("status").unwrap_or_default();
        ensure(member.contains("PSN Party source"), || {
            format!("member status: {member}")
        })?;
        let jitter = mix().list_items("jitter");
        ensure(
            jitter
                .iter()
                .map(|i| i.1.as_str())
                .eq(["low", "balanced", "stable"]),
            || format!("jitter items {jitter:?}"),
        )
    });

    runner.run_always("typed_secrets_never_reach_the_scene_collection", || {
        let typed = serde_json::json!({
            "npsso": config.npsso,
            "client_id": config.client_id,
            "client_secret": config.client_secret,
        });
        mix().update(&typed.to_string())?;
        let saved = mix().saved_json();
        no_typed_secret(&saved, &config, "was saved")?;
        ensure(saved.contains(&config.client_id), || {
            format!("client id not saved: {saved}")
        })
    });

    runner.run_always("sign_in_button_signs_in_and_joins_at_once", || {
        // The save above stripped them; the user types them again.
        let typed =
            serde_json::json!({"npsso": config.npsso, "client_secret": config.client_secret});
        mix().update(&typed.to_string())?;
        let started = Instant::now();
        let redraw = mix().click("sign_in");
        let returned = started.elapsed();
        println!("    Sign in returned {redraw:?} after {returned:?}");
        ensure(redraw == Some(true), || {
            format!("click returned {redraw:?}")
        })?;
        ensure(returned < Duration::from_millis(100), || {
            format!("the click took {returned:?}")
        })?;
        no_typed_secret(&mix().settings_json(), &config, "stayed in the settings")?;
        let joined = support::wait_for(Duration::from_secs(5), || sim.count("join") >= 1);
        println!(
            "    joined {joined:?} after the click; requests: {:?}",
            sim.counts()
        );
        // The session's backoff after NotSignedIn is 2 s and more: joining
        // well within it shows the click woke the session.
        ensure(
            joined.is_some_and(|d| d < Duration::from_millis(1500)),
            || format!("not joined soon after signing in: {joined:?}"),
        )?;
        for file in ["psn-tokens.json", "psn-client.json"] {
            let path = plugin_config_dir(&work).join(file);
            let mode = std::fs::metadata(&path)
                .map_err(|e| format!("{}: {e}", path.display()))?
                .permissions()
                .mode()
                & 0o777;
            ensure(mode == 0o600, || format!("{file} has mode {mode:o}"))?;
        }
        let status = support::wait_for(Duration::from_secs(5), || {
            mix()
                .property_description("account_status")
                .is_some_and(|t| t.contains(&config.online_id) && t.contains("more days"))
        });
        let line = mix()
            .property_description("account_status")
            .unwrap_or_default();
        println!("    account: {line}");
        ensure(status.is_some(), || format!("account status: {line}"))
    });

    runner.run("party_and_member_lists_fill_from_psn", || {
        let listed = support::wait_for(Duration::from_secs(5), || {
            mix()
                .list_items("party")
                .iter()
                .any(|i| i.1 == party.session_id)
        });
        let items = mix().list_items("party");
        println!("    party list: {items:?}");
        ensure(listed.is_some() && items[0].1 == "follow", || {
            format!("party list {items:?}")
        })?;
        let connected = support::wait_for(Duration::from_secs(15), || {
            mix()
                .all_property_names()
                .iter()
                .filter(|n| n.starts_with("members/member_"))
                .count()
                >= 4
                && (0..4).all(|i| {
                    mix()
                        .property_description(&format!("member_{}", account_of(NAMES[i])))
                        .is_some_and(|l| l.contains("connected") || l.contains("speaking"))
                })
        });
        for name in NAMES {
            println!(
                "    {}",
                mix()
                    .property_description(&format!("member_{}", account_of(name)))
                    .unwrap_or_default()
            );
        }
        ensure(connected.is_some(), || {
            "members not all connected in the dialog".into()
        })?;
        let members = ann().list_items("member");
        println!("    member list: {members:?}");
        for name in NAMES {
            ensure(members.iter().any(|i| i.1 == name), || {
                format!("{name} missing: {members:?}")
            })?;
        }
        ensure(
            members
                .iter()
                .any(|i| i.1 == "slot:4" && i.0 == "4th member to join"),
            || format!("slots missing: {members:?}"),
        )
    });

    runner.run(
        "only_allowed_mutes_every_member_nobody_ticked_and_shows_them_unticked",
        || {
            let levels_now = || {
                mix_audio.lock().unwrap().clear();
                std::thread::sleep(Duration::from_secs(2));
                let m = mix_audio.lock().unwrap();
                TONES
                    .iter()
                    .map(|&hz| tone_dbfs(&m.samples, RATE, hz))
                    .collect::<Vec<f64>>()
            };
            let ticks = || {
                let _ = mix().all_property_names(); // the dialog is drawn (its defaults set)
                NAMES
                    .iter()
                    .map(|n| mix().bool_setting(&format!("allow_{}", account_of(n))))
                    .collect::<Vec<bool>>()
            };
            // Nobody ticked anybody yet: all four are newcomers.
            mix().update(r#"{"only_allowed_members": true}"#)?;
            std::thread::sleep(Duration::from_millis(300));
            let (none, none_ticks) = (levels_now(), ticks());
            println!(
                "    only allowed, nobody ticked: mix tones {none:.1?} dB, boxes {none_ticks:?}"
            );
            // Ann ticked: only she is heard.
            mix().update(&format!(r#"{{"allow_{}": true}}"#, account_of("ann_ps")))?;
            std::thread::sleep(Duration::from_millis(300));
            let (ann, ann_ticks) = (levels_now(), ticks());
            println!("    ann ticked: mix tones {ann:.1?} dB, boxes {ann_ticks:?}");
            mix().update(r#"{"only_allowed_members": false}"#)?;
            ensure(none.iter().all(|&l| l < -60.0), || {
                format!("nobody ticked, yet heard: {none:?}")
            })?;
            ensure(none_ticks == [false; 4], || {
                format!("nobody ticked, yet boxes {none_ticks:?}")
            })?;
            ensure(ann_ticks == [true, false, false, false], || {
                format!("boxes of ann, ben, cat, dan: {ann_ticks:?}")
            })?;
            ensure(
                ann[0] > -30.0 && ann[1..].iter().all(|&l| l < -60.0),
                || format!("ann ticked, mix levels {ann:?}"),
            )
        },
    );

    runner.run(
        "a_disallowed_member_is_silent_in_the_mix_and_their_source",
        || {
            let ann_id = account_of("ann_ps");
            let others: String = NAMES[1..]
                .iter()
                .map(|n| format!(r#", "allow_{}": true"#, account_of(n)))
                .collect();
            mix().update(&format!(
                r#"{{"only_allowed_members": true, "allow_{ann_id}": false{others}}}"#
            ))?;
            std::thread::sleep(Duration::from_millis(500));
            mix_audio.lock().unwrap().clear();
            ann_audio.lock().unwrap().clear();
            std::thread::sleep(Duration::from_secs(2));
            let (mix_levels, ann_level) = {
                let m = mix_audio.lock().unwrap();
                let a = ann_audio.lock().unwrap();
                let levels: Vec<f64> = TONES
                    .iter()
                    .map(|&hz| tone_dbfs(&m.samples, RATE, hz))
                    .collect();
                (levels, tone_dbfs(&a.samples, RATE, TONES[0]))
            };
            println!(
                "    not allowed: mix tones {mix_levels:.1?} dB, ann's source {ann_level:.1} dB"
            );
            let line = mix()
                .property_description(&format!("allow_{ann_id}"))
                .unwrap_or_default();
            println!("    dialog: {line}");
            ensure(line.contains("muted"), || format!("ann's checkbox: {line}"))?;
            ensure(
                mix_levels[0] < -60.0 && mix_levels[1..].iter().all(|&l| l > -30.0),
                || format!("mix levels {mix_levels:?}"),
            )?;
            ensure(ann_level < -60.0, || {
                format!("ann's source at {ann_level:.1} dB")
            })?;
            // Allowed again: heard again.
            mix().update(&format!(r#"{{"allow_{ann_id}": true}}"#))?;
            std::thread::sleep(Duration::from_millis(300));
            ann_audio.lock().unwrap().clear();
            std::thread::sleep(Duration::from_secs(1));
            let back = tone_dbfs(&ann_audio.lock().unwrap().samples, RATE, TONES[0]);
            println!("    allowed again: ann's source {back:.1} dB");
            mix().update(r#"{"only_allowed_members": false}"#)?;
            ensure(back > -30.0, || format!("ann still silent: {back:.1} dB"))
        },
    );

    runner.run(
        "a_second_party_source_uses_the_first_ones_sign_in_and_consent",
        || {
            // Its own settings would mute everyone nobody ticked (all four, on it).
            let second = host.create_source(
                "psn_party",
                "PSN Party 2",
                r#"{"only_allowed_members": true}"#,
            )?;
            let note = second
                .property_description("owner_note")
                .unwrap_or_default();
            let names = second.all_property_names();
            println!("    second source: {note}");
            std::thread::sleep(Duration::from_millis(300));
            mix_audio.lock().unwrap().clear();
            std::thread::sleep(Duration::from_secs(2));
            let levels: Vec<f64> = {
                let m = mix_audio.lock().unwrap();
                TONES
                    .iter()
                    .map(|&hz| tone_dbfs(&m.samples, RATE, hz))
                    .collect()
            };
            println!("    with the second source: mix tones {levels:.1?} dB");
            let first_names = mix().all_property_names();
            drop(second);
            ensure(note.contains("“PSN Party”"), || {
                format!("second source's note: {note:?}")
            })?;
            ensure(
                !names
                    .iter()
                    .any(|n| n.starts_with("account") || n.starts_with("members")),
                || format!("the second source offers account or consent settings: {names:?}"),
            )?;
            ensure(
                first_names
                    .iter()
                    .any(|n| n == "members/only_allowed_members"),
                || format!("the first source lost its settings: {first_names:?}"),
            )?;
            ensure(levels.iter().all(|&l| l > -30.0), || {
                format!("the second source's consent setting applied: {levels:?}")
            })
        },
    );

    runner.run_always("the_saved_scene_holds_no_secret", || {
        let saved = format!("{}{}", mix().saved_json(), ann().saved_json());
        let leaked: Vec<String> = sim
            .secrets()
            .into_iter()
            .filter(|s| !s.is_empty() && saved.contains(s))
            .collect();
        println!(
            "    {} bytes saved; {} secrets checked",
            saved.len(),
            sim.secrets().len()
        );
        ensure(leaked.is_empty(), || {
            format!("{} secrets in the saved scene", leaked.len())
        })?;
        ensure(
            saved.contains("slot:1") && saved.contains("client_id"),
            || format!("settings not saved: {saved}"),
        )
    });

    runner.run_always("members_online_ids_are_masked_in_the_obs_log", || {
        let ours = plugin_log(&host);
        let is_word_char = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == '-';
        let named: Vec<&String> = ours
            .iter()
            .filter(|t| {
                NAMES.iter().any(|n| {
                    t.match_indices(n).any(|(at, _)| {
                        !t[..at].chars().next_back().is_some_and(is_word_char)
                            && !t[at + n.len()..].chars().next().is_some_and(is_word_char)
                    })
                })
            })
            .collect();
        let masked = ours.iter().filter(|t| t.contains("a…s")).count();
        println!(
            "    {} plugin log lines, {masked} with ann_ps masked, {} naming a member",
            ours.len(),
            named.len()
        );
        ensure(named.is_empty(), || {
            format!("online ids in the OBS log: {named:?}")
        })?;
        ensure(masked > 0, || {
            "no masked online id in the OBS log (nothing logged about members?)".into()
        })
    });

    runner.run_always(
        "a_source_that_cannot_start_is_inert_and_keeps_no_secret",
        || {
            let typed = serde_json::json!({
                "test_panic": "create",
                "npsso": config.npsso,
                "client_secret": config.client_secret,
            });
            let inert = host.create_source("psn_party", "Inert", &typed.to_string())?;
            let live = inert.settings_json();
            ensure(
                !live.contains(&config.npsso) && !live.contains(&config.client_secret),
                || "a secret stayed in the settings of a source whose create failed".into(),
            )?;
            inert.update(&serde_json::json!({"npsso": config.npsso}).to_string())?;
            let saved = inert.saved_json();
            ensure(
                !inert.settings_json().contains(&config.npsso) && !saved.contains(&config.npsso),
                || "an NPSSO set on the inert source stayed or was saved".into(),
            )?;
            ensure(saved.contains("test_panic"), || {
                format!("the inert source's settings were not saved: {saved}")
            })
        },
    );

    runner.run("a_second_obs_start_signs_in_from_the_token_store", || {
        ann_cell.borrow_mut().take();
        mix_cell.borrow_mut().take();
        let left = support::wait_for(Duration::from_secs(3), || sim.count("leave") >= 1);
        ensure(left.is_some(), || "did not leave".into())?;
        let authorize_before = sim.count("authorize");
        let joins_before = sim.count("join");
        let status = std::process::Command::new(std::env::current_exe().unwrap())
            .arg("--second-start")
            .arg(&work)
            .status()
            .map_err(|e| e.to_string())?;
        println!("    second start: {status}; requests: {:?}", sim.counts());
        *mix_cell.borrow_mut() = Some(host.create_source("psn_party", "PSN Party", "{}")?);
        ensure(status.success(), || format!("second start: {status}"))?;
        ensure(sim.count("join") > joins_before, || {
            "the second start did not join".into()
        })?;
        ensure(sim.count("authorize") == authorize_before, || {
            "the second start used an NPSSO".into()
        })?;
        *mix_cell.borrow_mut() = Some(host.create_source("psn_party", "PSN Party", "{}")?);
        Ok(())
    });

    runner.run("sign_out_leaves_and_forgets", || {
        let joined = support::wait_for(Duration::from_secs(5), || {
            mix()
                .property_description("status")
                .is_some_and(|t| t.contains("Properties night"))
        });
        ensure(joined.is_some(), || {
            "not in the party before signing out".into()
        })?;
        let leaves = sim.count("leave");
        ensure(mix().click("sign_out") == Some(true), || {
            "no sign-out button".into()
        })?;
        let left = support::wait_for(Duration::from_secs(3), || sim.count("leave") > leaves);
        ensure(left.is_some(), || "did not leave the party".into())?;
        let tokens = plugin_config_dir(&work).join("psn-tokens.json");
        let gone = support::wait_for(Duration::from_secs(2), || !tokens.exists());
        ensure(gone.is_some(), || "the token file is still there".into())?;
        let signed_out = support::wait_for(Duration::from_secs(2), || {
            mix()
                .property_description("account_status")
                .is_some_and(|t| t.starts_with("Not signed in"))
        });
        let line = mix()
            .property_description("account_status")
            .unwrap_or_default();
        println!("    after sign-out: {line}");
        ensure(signed_out.is_some(), || format!("account status: {line}"))
    });

    mix_cell.borrow_mut().take();
    sim.end_party(&party.session_id);
    run.finish(host, runner);
}

/// The plugin's config folder under the host's config dir.
/// Neither secret the user typed (the NPSSO, the client secret) is in `json`; `fails` says
/// where it was found ("was saved").
fn no_typed_secret(json: &str, config: &psn_sim::SimConfig, fails: &str) -> Result<(), String> {
    for (what, secret) in [
        ("the NPSSO", &config.npsso),
        ("the client secret", &config.client_secret),
    ] {
        ensure(!json.contains(secret.as_str()), || {
            format!("{what} {fails}")
        })?;
    }
    Ok(())
}

fn plugin_config_dir(work: &Path) -> PathBuf {
    work.join("config/obs-psn-party")
}

/// A new OBS process on the same config: signs in from the stored tokens
/// (no NPSSO anywhere) and joins the party; exits 0 when it did.
fn second_start(work: &Path) -> ! {
    let plugin = support::stage_plugin(&work.join("second"));
    let host = ObsHost::start(&work.join("config")).expect("libobs starts");
    host.load_module(&plugin.binary, &plugin.data)
        .expect("module loads");
    let mix: HostSource = host
        .create_source("psn_party", "PSN Party", "{}")
        .expect("psn_party");
    let ok = support::wait_for(Duration::from_secs(10), || {
        mix.property_description("status")
            .is_some_and(|t| t.contains("Properties night"))
    });
    println!(
        "    second start: {} after {ok:?}",
        mix.property_description("account_status")
            .unwrap_or_default()
    );
    drop(mix);
    let report = host.shutdown();
    println!("    second start: libobs shut down in {:?}", report.took);
    std::process::exit(if ok.is_some() { 0 } else { 1 });
}
