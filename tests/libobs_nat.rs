//! Voice across real NATs (issue 16, docs/network.md): the plugin in libobs in namespace A
//! behind router NAT-A, psn-sim's voice members in namespace B behind NAT-B, a real STUN server
//! (coturn) and psn-sim's rtcBridge on "the internet" (tools/netlab.sh). psn-sim's HTTP and
//! push stay on A's loopback through a Unix-socket forwarder (tools/netlab_forward.py), so only
//! the media crosses the NATs, and the plugin keeps refusing plain HTTP to anything else.
//!
//! Rows (each asserts every member's own tone in their own member source):
//! 1. both port-restricted cone: heard peer-to-peer (needs our server-reflexive candidate);
//! 2. ours open (DMZ), theirs symmetric: peer-to-peer through peer-reflexive candidates;
//! 3. both symmetric: peer-to-peer impossible, heard through PSN's relay, the line says so;
//! 4. STUN unreachable from A: host candidates only, the line says why it is not direct;
//! 5. 1 % loss, 60 ms delay on the internet links: no gap over 100 ms in 30 s.
//!
//! The "Test network" button must name each row's NAT type.
//!
//! Needs root (namespaces, iptables) and `cargo build -p psn-sim`; tools/test.sh runs it.
//! `cargo test --features test-producer --test libobs_nat [-- ROW...]`

mod support;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use obs_psn_party::obs::host::ObsHost;
use support::ensure;
use support::libobs::{tone_separation, RATE};

/// The namespaces' prefix: one per run, so two runs on one machine do not meet.
fn prefix() -> String {
    format!("nl{}", std::process::id())
}
/// psn-sim's ports, the same on both sides of the forwarder (the push `fqdn` names the port).
const HTTP_PORT: u16 = 18080;
const PUSH_PORT: u16 = 18081;
const STUN: &str = "stun:203.0.113.100:3478,stun:203.0.113.101:3478";
const MEMBERS: [(&str, f64); 2] = [("ann_ps", 300.0), ("ben_ps", 470.0)];

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Path_ {
    Direct,
    Relay,
}

struct Row {
    n: u32,
    what: &'static str,
    a: &'static str,
    b: &'static str,
    no_stun_a: bool,
    /// `MS,PERCENT`: delay and loss each way on A's internet link (tools/netlab.sh --impair).
    impair: Option<&'static str>,
    path: Path_,
    /// What the network test must say (a substring of its line).
    nat_type: &'static str,
    listen: Duration,
}

fn rows() -> Vec<Row> {
    let row = |n, what, a, b, path, nat_type| Row {
        n,
        what,
        a,
        b,
        no_stun_a: false,
        impair: None,
        path,
        nat_type,
        listen: Duration::from_secs(3),
    };
    vec![
        row(
            1,
            "both port-restricted cone",
            "cone",
            "cone",
            Path_::Direct,
            "NAT type 2",
        ),
        row(
            2,
            "ours open (DMZ), theirs symmetric",
            "open",
            "symmetric",
            Path_::Direct,
            "NAT type 2",
        ),
        row(
            3,
            "both symmetric",
            "symmetric",
            "symmetric",
            Path_::Relay,
            "NAT type 3",
        ),
        Row {
            no_stun_a: true,
            ..row(
                4,
                "STUN unreachable from our side",
                "cone",
                "cone",
                Path_::Relay,
                "no STUN server answered",
            )
        },
        Row {
            impair: Some("60,1"),
            listen: Duration::from_secs(30),
            ..row(
                5,
                "1 % loss and 60 ms delay on the internet links",
                "cone",
                "cone",
                Path_::Direct,
                "NAT type 2",
            )
        },
    ]
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--host-row") {
        let n: u32 = args[i + 1].parse().expect("row number");
        let row = rows().into_iter().find(|r| r.n == n).expect("known row");
        support::ensure_display();
        std::process::exit(match host_row(&row) {
            Ok(()) => 0,
            Err(e) => {
                eprintln!("    row {n}: {e}");
                1
            }
        });
    }
    if !is_root() {
        println!(
            "libobs_nat: SKIPPED: needs root (network namespaces); tools/test.sh runs it as root"
        );
        return;
    }
    let wanted: Vec<u32> = args.iter().skip(1).filter_map(|a| a.parse().ok()).collect();
    let mut failed = Vec::new();
    let started = Instant::now();
    for row in rows() {
        if !wanted.is_empty() && !wanted.contains(&row.n) {
            continue;
        }
        println!("row {}: {} (A {}, B {})", row.n, row.what, row.a, row.b);
        let t = Instant::now();
        match run_row(&row) {
            Ok(()) => println!("row {}: ok ({:.1} s)", row.n, t.elapsed().as_secs_f64()),
            Err(e) => {
                println!("row {}: FAILED: {e}", row.n);
                failed.push(row.n);
            }
        }
    }
    println!("libobs_nat: {:.1} s", started.elapsed().as_secs_f64());
    if !failed.is_empty() {
        println!("libobs_nat: rows failed: {failed:?}");
        std::process::exit(1);
    }
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn ns(name: &str) -> String {
    format!("{}-{name}", prefix())
}

/// Everything a row started; dropped (also on failure or panic) it stops them and takes the
/// namespaces down.
struct Lab {
    children: Vec<Child>,
}

impl Lab {
    fn up(row: &Row) -> Result<Lab, String> {
        let mut cmd = Command::new(repo().join("tools/netlab.sh"));
        cmd.env("NETLAB_PREFIX", prefix());
        cmd.args(["up", "--a", row.a, "--b", row.b]);
        if row.no_stun_a {
            cmd.arg("--no-stun-a");
        }
        if let Some(impair) = row.impair {
            cmd.args(["--impair", impair]);
        }
        let lab = Lab { children: vec![] };
        let out = cmd.output().map_err(|e| format!("netlab.sh: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "netlab.sh up: {}",
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        print!("    {}", String::from_utf8_lossy(&out.stdout));
        Ok(lab)
    }

    fn spawn(
        &mut self,
        netns: &str,
        program: &Path,
        args: &[&str],
        env: &[(&str, String)],
    ) -> Result<usize, String> {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &ns(netns)])
            .arg(program)
            .args(args);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| format!("{}: {e}", program.display()))?;
        self.children.push(child);
        Ok(self.children.len() - 1)
    }

    /// Reads the child's stdout into a shared buffer from now on.
    fn output_of(&mut self, i: usize) -> Arc<Mutex<Vec<String>>> {
        let lines = Arc::new(Mutex::new(Vec::new()));
        if let Some(out) = self.children[i].stdout.take() {
            let sink = lines.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(out).lines().map_while(Result::ok) {
                    sink.lock().unwrap().push(line);
                }
            });
        }
        lines
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = Command::new(repo().join("tools/netlab.sh"))
            .env("NETLAB_PREFIX", prefix())
            .arg("down")
            .stdout(Stdio::null())
            .status();
    }
}

fn wait_lines(
    lines: &Arc<Mutex<Vec<String>>>,
    limit: Duration,
    done: impl Fn(&[String]) -> bool,
) -> bool {
    support::wait_for(limit, || done(&lines.lock().unwrap())).is_some()
}

fn run_row(row: &Row) -> Result<(), String> {
    let sim_bin = std::env::current_exe()
        .ok()
        .and_then(|p| p.parent()?.parent().map(|d| d.join("psn-sim")))
        .filter(|p| p.exists())
        .ok_or("target/<profile>/psn-sim is missing: cargo build -p psn-sim")?;
    let run_dir = PathBuf::from(format!("/run/{}", prefix()));
    let mut lab = Lab::up(row)?;
    // psn-sim in B: its members behind NAT-B, its bridge on the public link.
    let party = format!("NAT row {}", row.n);
    let member_args: Vec<String> = MEMBERS
        .iter()
        .map(|(name, hz)| format!("{name}:PS5:{hz}"))
        .collect();
    let mut args = vec![
        "--port".to_string(),
        HTTP_PORT.to_string(),
        "--push-port".into(),
        PUSH_PORT.to_string(),
        "--party".into(),
        party.clone(),
    ];
    for m in &member_args {
        args.push("--member".into());
        args.push(m.clone());
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let sim = lab.spawn(
        "b",
        &sim_bin,
        &args,
        &[
            ("PSN_SIM_MEMBER_BIND", "10.0.2.2".into()),
            ("PSN_SIM_BRIDGE_BIND", "203.0.113.50".into()),
            ("PSN_SIM_STUN_SERVERS", "stun:203.0.113.100:3478".into()),
        ],
    )?;
    let sim_out = lab.output_of(sim);
    if !wait_lines(&sim_out, Duration::from_secs(10), |l| {
        l.iter().any(|l| l.starts_with("# party"))
    }) {
        // Only its comment lines: the others carry the client secret and the NPSSO.
        let said: Vec<String> = sim_out
            .lock()
            .unwrap()
            .iter()
            .filter(|l| l.starts_with('#'))
            .cloned()
            .collect();
        return Err(format!("psn-sim did not start: {said:?}"));
    }
    // HTTP and push: A's loopback -> Unix socket -> B's loopback.
    let forward = repo().join("tools/netlab_forward.py");
    for port in [HTTP_PORT, PUSH_PORT] {
        let sock = run_dir
            .join(format!("sim-{port}.sock"))
            .display()
            .to_string();
        let b = lab.spawn(
            "b",
            &forward,
            &["unix-to-tcp", &sock, &port.to_string()],
            &[],
        )?;
        let b_out = lab.output_of(b);
        if !wait_lines(&b_out, Duration::from_secs(5), |l| !l.is_empty()) {
            return Err("the forwarder in B did not start".into());
        }
        let a = lab.spawn(
            "a",
            &forward,
            &["tcp-to-unix", &port.to_string(), &sock],
            &[],
        )?;
        let a_out = lab.output_of(a);
        if !wait_lines(&a_out, Duration::from_secs(5), |l| !l.is_empty()) {
            return Err("the forwarder in A did not start".into());
        }
    }
    // The plugin's configuration: psn-sim's .env lines, but voice on every interface with the
    // lab's STUN servers.
    let mut env: Vec<(&str, String)> = Vec::new();
    let lines = sim_out.lock().unwrap().clone();
    for line in &lines {
        if let Some((k, v)) = line.split_once('=') {
            if k.starts_with("PSN_") && k != "PSN_VOICE_BIND" && k != "PSN_STUN_SERVERS" {
                env.push((leak(k), v.to_owned()));
            }
        }
    }
    env.push(("PSN_STUN_SERVERS", STUN.to_owned()));
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let n = row.n.to_string();
    let host = lab.spawn("a", &exe, &["--host-row", &n], &env)?;
    let host_out = lab.output_of(host);
    let limit = row.listen + Duration::from_secs(90);
    let started = Instant::now();
    let status = loop {
        if let Some(status) = lab.children[host].try_wait().map_err(|e| e.to_string())? {
            break status;
        }
        if started.elapsed() > limit {
            return Err(format!("the libobs host did not finish within {limit:?}"));
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    std::thread::sleep(Duration::from_millis(100));
    for line in host_out.lock().unwrap().iter() {
        println!("{line}");
    }
    ensure(status.success(), || {
        format!("the libobs host in A: {status}")
    })
}

fn leak(s: &str) -> &'static str {
    Box::leak(s.to_owned().into_boxed_str())
}

/// In namespace A: the plugin in libobs, one member source per member; what each hears.
fn host_row(row: &Row) -> Result<(), String> {
    let work = support::scratch_dir(&format!("nat-row{}", row.n));
    let plugin = support::stage_plugin(&work);
    let host = ObsHost::start(&work.join("config"))?;
    host.load_module(&plugin.binary, &plugin.data)?;
    let started = Instant::now();
    let mix = host.create_source("psn_party", "party", "{}")?;
    // By online id: the member source's line then names that member's state and path.
    let names: Vec<&str> = MEMBERS.iter().map(|(name, _)| *name).collect();
    let sources = support::libobs::member_sources(&host, &names, "")?;
    // The network test, as a user clicks it; it runs while voice connects.
    mix.click("network_test");
    // Time to first audio: the member's own tone dominating the last 200 ms of their source.
    let mut first_audio: Vec<Option<Duration>> = vec![None; MEMBERS.len()];
    let deadline = Duration::from_secs(40);
    while started.elapsed() < deadline && first_audio.iter().any(Option::is_none) {
        for (i, (_, audio)) in sources.iter().enumerate() {
            if first_audio[i].is_some() {
                continue;
            }
            let audio = audio.lock().unwrap();
            let n = audio.samples.len();
            if n < RATE as usize / 5 {
                continue;
            }
            let tail = &audio.samples[n - RATE as usize / 5..];
            let (own, other) = own_and_other(tail, i);
            if own > -40.0 && own - other > 20.0 {
                first_audio[i] = Some(started.elapsed());
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let lines = || -> Vec<String> {
        MEMBERS
            .iter()
            .enumerate()
            .map(|(i, (name, _))| member_line(&sources[i].0, name))
            .collect()
    };
    for (i, (name, _)) in MEMBERS.iter().enumerate() {
        match first_audio[i] {
            Some(t) => println!(
                "    FIGURE nat_row{}_first_audio_{name}_ms {}",
                row.n,
                t.as_millis()
            ),
            None => {
                return Err(format!(
                    "{name} was never heard in their own source; lines: {:?}",
                    lines()
                ))
            }
        }
    }
    // Which path: each member's line says it, in words.
    let want = match row.path {
        Path_::Direct => "direct",
        Path_::Relay => "PSN relay",
    };
    let path_ok = support::wait_for(Duration::from_secs(5), || {
        lines().iter().all(|l| l.contains(want))
    });
    for line in lines() {
        println!("    member line: {line}");
        ensure(path_ok.is_some(), || format!("expected {want}: {line}"))?;
        if row.n == 4 {
            ensure(line.contains("no STUN server answered"), || {
                format!("row 4 must say STUN failed: {line}")
            })?;
        }
    }
    // The network test's verdict.
    let verdict = support::wait_for(Duration::from_secs(10), || {
        mix.property_description("network_result")
            .is_some_and(|t| !t.is_empty() && !t.contains("Testing"))
    });
    let result = mix
        .property_description("network_result")
        .unwrap_or_default();
    println!("    network test: {result}");
    ensure(verdict.is_some() && result.contains(row.nat_type), || {
        format!("network test should say {:?}: {result:?}", row.nat_type)
    })?;
    // Listen: every member's own tone in their own source, and no gap.
    for (_, audio) in &sources {
        audio.lock().unwrap().clear();
    }
    std::thread::sleep(row.listen);
    for (i, (name, _)) in MEMBERS.iter().enumerate() {
        let audio = sources[i].1.lock().unwrap();
        let (own, other) = own_and_other(&audio.samples, i);
        let seconds = audio.samples.len() as f64 / f64::from(RATE);
        let gap_ms = audio.longest_quiet_ms(0.02);
        println!(
            "    {name}: {seconds:.1} s, own tone {own:.1} dB, loudest other {other:.1} dB, longest gap {gap_ms:.1} ms"
        );
        println!(
            "    FIGURE nat_row{}_longest_gap_{name}_ms {gap_ms:.1}",
            row.n
        );
        ensure(seconds > row.listen.as_secs_f64() * 0.8, || {
            format!("{name}: only {seconds:.1} s of audio")
        })?;
        ensure(own - other >= 30.0, || {
            format!(
                "{name}: own tone only {:.1} dB above the other",
                own - other
            )
        })?;
        ensure(gap_ms <= 100.0, || {
            format!("{name}: a gap of {gap_ms:.1} ms")
        })?;
    }
    drop(sources);
    drop(mix);
    let _ = host.shutdown();
    Ok(())
}

/// The member's own tone and the loudest other member's, in dBFS.
fn own_and_other(samples: &[f32], i: usize) -> (f64, f64) {
    tone_separation(samples, &MEMBERS.map(|(_, hz)| hz), i)
}

/// The member source's line about its member: `name (PS5): state[, path]`.
fn member_line(source: &obs_psn_party::obs::host::HostSource, name: &str) -> String {
    let text = source.property_description("status").unwrap_or_default();
    text.lines()
        .find(|l| l.starts_with(&format!("{name} (")))
        .unwrap_or(&text)
        .to_owned()
}
