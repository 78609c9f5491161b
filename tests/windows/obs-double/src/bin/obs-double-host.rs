//! The Windows host of the wine test: loads the real `obs-psn-party.dll` through the libobs test
//! double (`obs.dll`) by libobs's own calls, adds the PSN Party mix and one PSN Party Member
//! source per member, records while told to, writes one WAV per source, and unloads.
//!
//! Driven line by line on stdin by tools/windows/wine-demo (which runs psn-sim on Linux):
//! it prints `READY` once the sources exist, starts recording on `RECORD`, and on `STOP` writes
//! the WAVs, releases the sources, shuts down and prints what it found.
//!
//! Usage: obs-double-host --plugin DLL --data DIR --out DIR [--member NAME]...

use std::ffi::{c_char, c_int, c_void, CStr, CString};
use std::io::{BufRead, Write};
use std::path::PathBuf;

extern "C" {
    fn obs_startup(locale: *const c_char, config: *const c_char, store: *mut c_void) -> bool;
    fn obs_shutdown();
    fn obs_open_module(out: *mut *mut c_void, path: *const c_char, data: *const c_char) -> c_int;
    fn obs_init_module(module: *mut c_void) -> bool;
    fn obs_get_module_description(module: *mut c_void) -> *const c_char;
    fn obs_source_create(
        id: *const c_char,
        name: *const c_char,
        settings: *mut c_void,
        hotkeys: *mut c_void,
    ) -> *mut c_void;
    fn obs_source_release(source: *mut c_void);
    fn obs_data_create_from_json(json: *const c_char) -> *mut c_void;
    fn obs_data_release(data: *mut c_void);
    fn bnum_allocs() -> i64;
    fn bfree(ptr: *mut c_void);
    fn obs_double_record(source: *mut c_void, on: bool);
    fn obs_double_write_wav(source: *mut c_void, path: *const c_char) -> i64;
    fn obs_double_saved_json(source: *mut c_void) -> *mut c_char;
}

struct Options {
    plugin: String,
    data: String,
    out: PathBuf,
    members: Vec<String>,
}

fn options() -> Result<Options, String> {
    let mut o = Options {
        plugin: String::new(),
        data: String::new(),
        out: PathBuf::new(),
        members: Vec::new(),
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let value = args.next().ok_or(format!("{arg} needs a value"))?;
        match arg.as_str() {
            "--plugin" => o.plugin = value,
            "--data" => o.data = value,
            "--out" => o.out = PathBuf::from(value),
            "--member" => o.members.push(value),
            other => return Err(format!("unknown argument {other}")),
        }
    }
    if o.plugin.is_empty() || o.data.is_empty() || o.out.as_os_str().is_empty() {
        return Err(
            "usage: obs-double-host --plugin DLL --data DIR --out DIR [--member NAME]...".into(),
        );
    }
    Ok(o)
}

fn c(text: &str) -> CString {
    CString::new(text).expect("no NUL in arguments")
}

fn say(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

/// Waits for `word` on stdin; false when stdin closes first.
fn wait_for(word: &str) -> bool {
    let mut line = String::new();
    loop {
        line.clear();
        match std::io::stdin().lock().read_line(&mut line) {
            Ok(0) | Err(_) => return false,
            Ok(_) if line.trim() == word => return true,
            Ok(_) => {}
        }
    }
}

unsafe fn create(id: &str, name: &str, json: &str) -> Result<*mut c_void, String> {
    let settings = obs_data_create_from_json(c(json).as_ptr());
    let source = obs_source_create(
        c(id).as_ptr(),
        c(name).as_ptr(),
        settings,
        std::ptr::null_mut(),
    );
    obs_data_release(settings);
    if source.is_null() {
        Err(format!("could not create {id} '{name}'"))
    } else {
        Ok(source)
    }
}

fn main() {
    let o = match options() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(2);
        }
    };
    if let Err(e) = run(&o) {
        say(&format!("FAILED {e}"));
        std::process::exit(1);
    }
}

fn run(o: &Options) -> Result<(), String> {
    // Where OBS for Windows keeps plugin config: %APPDATA%/obs-studio/plugin_config (libobs
    // joins with '/'). A fresh sign-in each run: psn-sim's accounts are new every time.
    let appdata = std::env::var("APPDATA").map_err(|_| "APPDATA is not set")?;
    let config = format!("{appdata}/obs-studio/plugin_config");
    let plugin_config = PathBuf::from(format!("{config}/obs-psn-party"));
    let _ = std::fs::remove_dir_all(&plugin_config);
    std::fs::create_dir_all(&o.out).map_err(|e| e.to_string())?;

    unsafe {
        if !obs_startup(c"en-US".as_ptr(), c(&config).as_ptr(), std::ptr::null_mut()) {
            return Err("obs_startup failed".into());
        }
        let mut module = std::ptr::null_mut();
        let code = obs_open_module(&mut module, c(&o.plugin).as_ptr(), c(&o.data).as_ptr());
        if code != 0 {
            return Err(format!("obs_open_module answered {code}"));
        }
        if !obs_init_module(module) {
            return Err("obs_init_module failed".into());
        }
        let description = CStr::from_ptr(obs_get_module_description(module)).to_string_lossy();
        say(&format!("MODULE {description}"));

        let mix = create("psn_party", "PSN Party", "{}")?;
        let mut members = Vec::new();
        for (i, name) in o.members.iter().enumerate() {
            let settings = format!(r#"{{"member": "slot:{}"}}"#, i + 1);
            members.push(create("psn_party_member", name, &settings)?);
        }
        say("READY");
        if !wait_for("RECORD") {
            return Err("stdin closed before RECORD".into());
        }
        for &source in members.iter().chain([&mix]) {
            obs_double_record(source, true);
        }
        say("RECORDING");
        if !wait_for("STOP") {
            return Err("stdin closed before STOP".into());
        }
        for &source in members.iter().chain([&mix]) {
            obs_double_record(source, false);
        }
        for (i, (name, &source)) in o.members.iter().zip(&members).enumerate() {
            let path = o.out.join(format!("member-{}-{name}.wav", i + 1));
            let n = obs_double_write_wav(source, c(&path.to_string_lossy()).as_ptr());
            say(&format!("WAV {} {n}", path.display()));
        }
        let n = obs_double_write_wav(mix, c(&o.out.join("mix.wav").to_string_lossy()).as_ptr());
        say(&format!("WAV mix {n}"));
        let saved = obs_double_saved_json(mix);
        say(&format!(
            "SAVED {}",
            CStr::from_ptr(saved).to_string_lossy()
        ));
        bfree(saved.cast());

        let files: Vec<String> = std::fs::read_dir(&plugin_config)
            .map(|dir| {
                dir.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        say(&format!(
            "CONFIG {} FILES {}",
            plugin_config.display(),
            files.join(",")
        ));

        let start = std::time::Instant::now();
        for source in members.into_iter().chain([mix]) {
            obs_source_release(source);
        }
        obs_shutdown();
        say(&format!(
            "SHUTDOWN {} ms LEAKS {}",
            start.elapsed().as_millis(),
            bnum_allocs()
        ));
    }
    Ok(())
}
