//! `psn-sim`: runs the simulator on 127.0.0.1 until Ctrl-C and prints the `.env` lines that point
//! obs-psn-party at it. See docs/psn-sim.md.

use std::time::Duration;

fn usage() -> ! {
    eprintln!(
        "usage: psn-sim [--port N] [--push-port N] [--party NAME] [--member ONLINE_ID:PLATFORM[:TONE_HZ|:voice]]... \
         [--voice] [--voice-spec JSON] [--access-ttl SECS] [--refresh-ttl SECS] [--fault JSON]...\n\
         Serves every PSN endpoint obs-psn-party uses on 127.0.0.1; control API under /_sim/.\n\
         A member with :TONE_HZ (or :voice, a default tone) is a WebRTC voice peer; --voice gives\n\
         every member without one the default voice, --voice-spec JSON sets that default's fields."
    );
    std::process::exit(2)
}

#[tokio::main]
async fn main() {
    let mut port = 0u16;
    let mut push_port = 0u16;
    let mut party: Option<String> = None;
    // (online id, platform, None = no voice of its own / Some(tone override))
    let mut members: Vec<(String, String, Option<Option<f64>>)> = vec![];
    let mut default_voice: Option<psn_sim::VoiceSpec> = None;
    let mut cfg = psn_sim::SimConfig::default();
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut val = || args.next().unwrap_or_else(|| usage());
        match a.as_str() {
            "--port" => port = val().parse().unwrap_or_else(|_| usage()),
            "--push-port" => push_port = val().parse().unwrap_or_else(|_| usage()),
            "--party" => party = Some(val()),
            "--member" => {
                let v = val();
                let mut parts = v.splitn(3, ':');
                let o = parts.next().unwrap_or("member");
                let p = parts.next().unwrap_or("PS5");
                let voice = match parts.next() {
                    None => None,
                    Some("voice") => Some(None),
                    Some(hz) => Some(Some(hz.parse().unwrap_or_else(|_| usage()))),
                };
                members.push((o.to_string(), p.to_string(), voice));
            }
            "--voice" => {
                default_voice.get_or_insert_with(psn_sim::VoiceSpec::default);
            }
            "--voice-spec" => {
                let v: psn_sim::VoiceSpec = serde_json::from_str(&val()).unwrap_or_else(|e| {
                    eprintln!("psn-sim: bad --voice-spec: {e}");
                    usage()
                });
                if let Err(e) = v.validate() {
                    eprintln!("psn-sim: bad --voice-spec: {e}");
                    usage()
                }
                default_voice = Some(v);
            }
            "--access-ttl" => cfg.access_ttl = val().parse().unwrap_or_else(|_| usage()),
            "--refresh-ttl" => cfg.refresh_ttl = val().parse().unwrap_or_else(|_| usage()),
            "--fault" => cfg
                .faults
                .push(serde_json::from_str(&val()).unwrap_or_else(|e| {
                    eprintln!("psn-sim: bad --fault: {e}");
                    usage()
                })),
            _ => usage(),
        }
    }
    // The NAT tests place the media off loopback (src/voice_net.rs).
    match psn_sim::voice_net::VoiceNet::from_lookup(|k| std::env::var(k).ok()) {
        Ok(net) => {
            psn_sim::voice_net::set(net);
        }
        Err(e) => {
            eprintln!("psn-sim: {e}");
            usage()
        }
    }
    let sim = match psn_sim::start_on(cfg, port, push_port).await {
        Ok(s) => s,
        Err(e) => {
            eprintln!("psn-sim: cannot listen on 127.0.0.1: {e}");
            std::process::exit(1);
        }
    };
    // A member's own voice (`:voice`, `:HZ`) starts from the --voice-spec fields.
    let base = default_voice.clone().unwrap_or_default();
    let members: Vec<psn_sim::MemberSpec> = members
        .into_iter()
        .map(|(o, p, v)| psn_sim::MemberSpec {
            online_id: o,
            platform: p,
            voice: v.map(|tone| psn_sim::VoiceSpec {
                tone_hz: tone.or(base.tone_hz),
                ..base.clone()
            }),
        })
        .collect();
    for m in &members {
        if let Some(Err(e)) = m.voice.as_ref().map(psn_sim::VoiceSpec::validate) {
            eprintln!("psn-sim: bad --member {}: {e}", m.online_id);
            usage()
        }
    }
    sim.set_default_voice(default_voice);
    println!(
        "# psn-sim on {} (push WebSocket on {}); put these in .env:",
        sim.base_url(),
        sim.push_addr()
    );
    for (key, value) in sim.plugin_env() {
        println!("{key}={value}");
    }
    if party.is_some() || !members.is_empty() {
        let p = sim.start_party_with(party.as_deref().unwrap_or(""), &members);
        println!(
            "# party {} (link {}) with {} members",
            p.session_id,
            p.link_id,
            p.members.len()
        );
    }
    let _ = tokio::signal::ctrl_c().await;
    tokio::time::sleep(Duration::from_millis(10)).await;
}
