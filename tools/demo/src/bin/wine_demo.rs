//! The demo scenario for the Windows build, under wine: psn-sim runs here on Linux (127.0.0.1,
//! which wine shares) with a party of four speaking members; the Windows host
//! (tests/windows/obs-double, started by the command after `--`) loads the real
//! `obs-psn-party.dll`, signs in, joins and records each member's source and the mix. The WAVs it
//! writes are checked here with the demo's isolation analysis: each member's source carries that
//! member's tone and no one else's (30 dB apart), the mix carries all four. Also: the token
//! store landed in OBS's module config folder, the saved settings hold no secret, no libobs
//! allocation leaked, the module unloaded.
//!
//! Usage: psn-party-wine-demo --out DIR [--seconds N] -- COMMAND [ARG]...
//! (the command gets `--member NAME` appended for each member; tools/windows/wine-demo.sh)

#[path = "../party.rs"]
mod party;
#[path = "../wav.rs"]
#[allow(dead_code)]
mod wav;

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use obs_psn_party::audio::analysis::{dominant_hz, rms_dbfs, tone_dbfs};
use party::{MEMBERS, RATE};

fn main() {
    let mut args = std::env::args().skip(1);
    let mut out = PathBuf::from("target/windows/wine-demo");
    let mut seconds = 8u64;
    let mut command = Vec::new();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--out" => out = PathBuf::from(args.next().unwrap_or_default()),
            "--seconds" => seconds = args.next().and_then(|s| s.parse().ok()).unwrap_or(8),
            "--" => command = args.by_ref().collect(),
            other => {
                eprintln!("unknown argument {other}");
                std::process::exit(2);
            }
        }
    }
    if command.is_empty() {
        eprintln!("usage: psn-party-wine-demo --out DIR [--seconds N] -- COMMAND [ARG]...");
        std::process::exit(2);
    }
    match run(&out, seconds, &command) {
        Ok(()) => println!("wine demo: PASSED"),
        Err(problem) => {
            eprintln!("wine demo: FAILED: {problem}");
            std::process::exit(1);
        }
    }
}

/// The host's stdout, line by line, echoed as it comes.
fn lines_of(stdout: std::process::ChildStdout) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            println!("  wine| {line}");
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

/// Waits for a line starting with `word`; generous limits: wine starts slowly on a busy machine.
fn expect(rx: &mpsc::Receiver<String>, word: &str, within: Duration) -> Result<String, String> {
    let deadline = Instant::now() + within;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) if line.starts_with(word) => return Ok(line),
            Ok(line) if line.starts_with("FAILED") => return Err(format!("the host: {line}")),
            Ok(_) => {}
            Err(_) => return Err(format!("no {word} from the Windows host within {within:?}")),
        }
    }
}

fn run(out: &Path, seconds: u64, command: &[String]) -> Result<(), String> {
    let _ = std::fs::remove_dir_all(out);
    std::fs::create_dir_all(out).map_err(|e| e.to_string())?;

    let sim = party::start_sim("Wine party", false)?;
    let config = sim.config();

    // The plugin reads its configuration from the environment (wine passes it on).
    let mut child = Command::new(&command[0]);
    child.args(&command[1..]);
    for (name, _) in MEMBERS {
        child.arg("--member").arg(name);
    }
    for (key, value) in sim.plugin_env() {
        child.env(key, value);
    }
    child.stdin(Stdio::piped()).stdout(Stdio::piped());
    let started = Instant::now();
    let mut child = child.spawn().map_err(|e| format!("{}: {e}", command[0]))?;
    let mut stdin = child.stdin.take().ok_or("no stdin")?;
    let rx = lines_of(child.stdout.take().ok_or("no stdout")?);
    let outcome = drive(&sim, &rx, &mut stdin, seconds, started);
    drop(stdin);
    let status = child.wait().map_err(|e| e.to_string())?;
    let (saved, config_line, shutdown) = outcome?;
    if !status.success() {
        return Err(format!("the Windows host exited with {status}"));
    }
    check(
        out,
        &saved,
        &config_line,
        &shutdown,
        &config.client_secret,
        &config.npsso,
    )
}

fn drive(
    sim: &psn_sim::SimHandle,
    rx: &mpsc::Receiver<String>,
    stdin: &mut impl Write,
    seconds: u64,
    started: Instant,
) -> Result<(String, String, String), String> {
    expect(rx, "READY", Duration::from_secs(180))?;
    println!(
        "sources added {:.1} s after wine started",
        started.elapsed().as_secs_f64()
    );
    party::wait_connected(sim, Instant::now(), Duration::from_secs(90))?;
    std::thread::sleep(Duration::from_millis(500));
    writeln!(stdin, "RECORD").map_err(|e| e.to_string())?;
    expect(rx, "RECORDING", Duration::from_secs(30))?;
    println!("recording {seconds} s ...");
    std::thread::sleep(Duration::from_secs(seconds));
    writeln!(stdin, "STOP").map_err(|e| e.to_string())?;
    let saved = expect(rx, "SAVED", Duration::from_secs(60))?;
    let config = expect(rx, "CONFIG", Duration::from_secs(30))?;
    let shutdown = expect(rx, "SHUTDOWN", Duration::from_secs(60))?;
    Ok((saved, config, shutdown))
}

/// A mono float WAV as the test double writes it (44-byte header, then f32 samples).
fn read_f32_wav(path: &Path) -> Result<Vec<f32>, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    if bytes.len() < 44
        || &bytes[0..4] != b"RIFF"
        || u16::from_le_bytes([bytes[20], bytes[21]]) != 3
    {
        return Err(format!("{} is not a float WAV", path.display()));
    }
    Ok(bytes[44..]
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect())
}

fn check(
    out: &Path,
    saved: &str,
    config_line: &str,
    shutdown: &str,
    client_secret: &str,
    npsso: &str,
) -> Result<(), String> {
    let mut problems = Vec::new();
    println!();
    println!(
        "{:<14} {:<8} {:>10} {:>12} {:>10} {:>12}",
        "member", "source", "level", "dominant", "expected", "own/others"
    );
    for (i, (name, hz)) in MEMBERS.iter().enumerate() {
        let samples = read_f32_wav(&out.join(format!("member-{}-{name}.wav", i + 1)))?;
        let (own, others) = party::own_and_others(&samples, i);
        let dominant = dominant_hz(&samples, RATE, 100, 2000);
        println!(
            "{:<14} {:<8} {:>7.1} dB {:>9.0} Hz {:>7.0} Hz {:>9.1} dB",
            name,
            format!("slot:{}", i + 1),
            rms_dbfs(&samples),
            dominant,
            hz,
            own - others
        );
        if samples.len() < RATE as usize {
            problems.push(format!("{name}'s source gave {} samples", samples.len()));
        }
        if !party::carries_alone(&samples, i) {
            problems.push(format!("{name}'s source does not carry {name} alone"));
        }
    }
    let mix = read_f32_wav(&out.join("mix.wav"))?;
    let quietest = MEMBERS
        .iter()
        .map(|(_, hz)| tone_dbfs(&mix, RATE, *hz))
        .fold(f64::INFINITY, f64::min);
    println!(
        "{:<14} {:<8} {:>7.1} dB  quietest member's tone in the mix {:.1} dB",
        "(everyone)",
        "mix",
        rms_dbfs(&mix),
        quietest
    );
    // Each tone well above silence (their talkspurts play at about -20 dBFS each).
    if quietest < -50.0 {
        problems.push(format!(
            "a member's tone is missing from the mix ({quietest:.1} dB)"
        ));
    }
    if !config_line.contains("obs-studio/plugin_config/obs-psn-party")
        || !config_line.contains("psn-tokens.json")
    {
        problems.push(format!(
            "the token store is not in OBS's module config folder: {config_line}"
        ));
    }
    if saved.contains(client_secret) || saved.contains(npsso) {
        problems.push("the saved settings hold a secret".into());
    }
    if !shutdown.ends_with("LEAKS 0") {
        problems.push(format!("libobs allocations leaked: {shutdown}"));
    }
    println!("{shutdown}");
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join("; "))
    }
}
