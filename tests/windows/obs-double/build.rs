//! The double's build: the libobs types from the same headers as the plugin (bindgen, Windows
//! target), and an import library for `obs.dll` from the plugin's own function list (the
//! `FUNCTIONS` of the top-level build.rs) for the host program, which calls the double by the
//! names libobs uses.

use std::env;
use std::path::PathBuf;

fn main() {
    let manifest = PathBuf::from(env::var("CARGO_MANIFEST_DIR").unwrap());
    let plugin_build = manifest.join("../../../build.rs");
    let wrapper = manifest.join("../../../src/obs/wrapper.h");
    println!("cargo:rerun-if-changed={}", plugin_build.display());
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=LIBOBS_INCLUDE_DIR");
    let out = PathBuf::from(env::var("OUT_DIR").unwrap());

    let functions = plugin_functions(&std::fs::read_to_string(&plugin_build).unwrap());
    assert!(
        functions.len() > 40,
        "no FUNCTIONS list found in {}",
        plugin_build.display()
    );
    let names: String = functions.iter().map(|f| format!("    {f:?},\n")).collect();
    std::fs::write(
        out.join("functions.rs"),
        format!("/// The plugin's libobs function list (its build.rs).\npub const FUNCTIONS: &[&str] = &[\n{names}];\n"),
    )
    .unwrap();

    let mut def = String::from("LIBRARY obs.dll\nEXPORTS\n");
    for f in functions.iter().filter(|f| *f != "vsnprintf") {
        def.push_str(f);
        def.push('\n');
    }
    // The double's own controls, for the host program only.
    for f in [
        "obs_double_record",
        "obs_double_write_wav",
        "obs_double_saved_json",
    ] {
        def.push_str(f);
        def.push('\n');
    }
    let def_path = out.join("obs.def");
    std::fs::write(&def_path, def).unwrap();
    let dlltool = env::var("DLLTOOL").unwrap_or_else(|_| "x86_64-w64-mingw32-dlltool".into());
    let import = out.join("libobs-host.dll.a");
    let status = std::process::Command::new(&dlltool)
        .arg("--input-def")
        .arg(&def_path)
        .arg("--output-lib")
        .arg(&import)
        .arg("--dllname")
        .arg("obs.dll")
        .status()
        .expect("running dlltool");
    assert!(status.success(), "dlltool failed");
    // Only the host program imports from obs.dll; the double is obs.dll.
    println!("cargo:rustc-link-arg-bins={}", import.display());

    let include = PathBuf::from(env::var("LIBOBS_INCLUDE_DIR").expect("LIBOBS_INCLUDE_DIR"));
    let mut builder = bindgen::Builder::default()
        .header(wrapper.display().to_string())
        .default_enum_style(bindgen::EnumVariation::Rust {
            non_exhaustive: false,
        })
        .constified_enum_module("obs_data_type")
        .derive_default(true)
        .layout_tests(false)
        .generate_comments(false)
        .clang_arg(format!("-I{}", include.display()));
    if let Some(parent) = include.parent() {
        builder = builder.clang_arg(format!("-I{}", parent.display()));
    }
    for t in [
        "obs_source_info",
        "obs_source_audio",
        "obs_audio_info",
        "obs_data_type",
        "obs_module_t",
    ] {
        builder = builder.allowlist_type(t);
    }
    for v in ["MAX_AV_PLANES", "LIBOBS_API_.*_VER"] {
        builder = builder.allowlist_var(v);
    }
    builder
        .generate()
        .expect("bindgen over the libobs headers")
        .write_to_file(out.join("libobs_types.rs"))
        .unwrap();
}

/// The names in `const FUNCTIONS: &[&str] = &[ ... ];` of the plugin's build.rs.
fn plugin_functions(build_rs: &str) -> Vec<String> {
    let Some(start) = build_rs.find("const FUNCTIONS: &[&str] = &[") else {
        return Vec::new();
    };
    let body = &build_rs[start..];
    let end = body.find("];").unwrap_or(body.len());
    body[..end]
        .lines()
        .skip(1)
        .map(str::trim)
        .filter(|l| l.starts_with('"'))
        .map(|l| l.trim_end_matches(',').trim_matches('"').to_owned())
        .collect()
}
