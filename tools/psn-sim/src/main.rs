//! `psn-sim`: runs the simulator on 127.0.0.1 until Ctrl-C and prints the `.env` lines that point
//! obs-psn-party at it. See docs/psn-sim.md.

use std::time::Duration;

fn usage() -> ! {
    eprintln!(
        "usage: psn-sim [--port N] [--push-port N] [--party NAME] [--member ONLINE_ID:PLATFORM]... \
         [--access-ttl SECS] [--refresh-ttl SECS] [--fault JSON]...\n\
         Serves every PSN endpoint obs-psn-party uses on 127.0.0.1; control API under /_sim/."
    );
    std::process::exit(2)
}

#[tokio::main]
async fn main() {
    let mut port = 0u16;
    let mut push_port = 0u16;
    let mut party: Option<String> = None;
    let mut members: Vec<(String, String)> = vec![];
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
                let (o, p) = v.split_once(':').unwrap_or((v.as_str(), "PS5"));
                members.push((o.to_string(), p.to_string()));
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
    let sim = match psn_sim::start_on(cfg, port, push_port).await {
        Ok(s) => s,
        Err(e) => {
            eprintln!("psn-sim: cannot listen on 127.0.0.1: {e}");
            std::process::exit(1);
        }
    };
    let c = sim.config();
    let base = sim.base_url();
    println!(
        "# psn-sim on {base} (push WebSocket on {}); put these in .env:",
        sim.push_addr()
    );
    for k in [
        "PSN_AUTH_BASE_URL",
        "PSN_API_BASE_URL",
        "PSN_PUSH_BASE_URL",
        "PSN_WEB_BASE_URL",
    ] {
        println!("{k}={base}");
    }
    println!("PSN_CLIENT_ID={}", c.client_id);
    println!("PSN_CLIENT_SECRET={}", c.client_secret);
    println!("PSN_NPSSO={}", c.npsso);
    if party.is_some() || !members.is_empty() {
        let refs: Vec<(&str, &str)> = members
            .iter()
            .map(|(a, b)| (a.as_str(), b.as_str()))
            .collect();
        let p = sim.start_party(party.as_deref().unwrap_or(""), &refs);
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
