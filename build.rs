//! Generates the libobs bindings from the headers installed on this machine.
//!
//! We run bindgen ourselves (rather than use the published `obs-sys`, whose
//! bindings are pre-generated for OBS 28-era layouts) so that every struct
//! layout matches the libobs we link against. See docs/decisions/0001-bindings.md.

use std::env;
use std::path::PathBuf;

/// The oldest libobs whose headers we support building against.
const MIN_LIBOBS: &str = "29.0";

/// Every libobs function the plugin (and its test host) calls. Keep this list
/// short: anything not named here is not generated.
const FUNCTIONS: &[&str] = &[
    // logging and memory
    "blog",
    "base_set_log_handler",
    "base_get_log_handler",
    "bnum_allocs",
    "bfree",
    "os_gettime_ns",
    // locale
    "obs_module_load_locale",
    "obs_module_get_config_path",
    "obs_module_file",
    "text_lookup_getstr",
    "text_lookup_destroy",
    // sources
    "obs_register_source_s",
    "obs_source_output_audio",
    "obs_source_update_properties",
    "obs_source_create",
    "obs_source_release",
    "obs_source_remove",
    "obs_source_get_id",
    "obs_source_get_name",
    "obs_source_get_settings",
    "obs_source_update",
    "obs_source_properties",
    "obs_source_get_display_name",
    "obs_source_add_audio_capture_callback",
    "obs_source_remove_audio_capture_callback",
    "obs_source_set_audio_active",
    "obs_source_set_muted",
    "obs_set_output_source",
    "obs_enum_input_types",
    "obs_get_audio_info",
    // settings and properties
    "obs_data_create",
    "obs_data_create_from_json",
    "obs_data_release",
    "obs_data_get_json",
    "obs_data_get_string",
    "obs_data_get_int",
    "obs_data_get_double",
    "obs_data_get_bool",
    "obs_data_set_string",
    "obs_data_set_int",
    "obs_data_set_double",
    "obs_data_set_bool",
    "obs_data_set_default_string",
    "obs_data_set_default_int",
    "obs_data_set_default_double",
    "obs_data_set_default_bool",
    "obs_properties_create",
    "obs_properties_destroy",
    "obs_properties_add_text",
    "obs_properties_get",
    "obs_properties_first",
    "obs_property_next",
    "obs_property_name",
    "obs_property_description",
    "obs_property_get_type",
    // the properties dialog (issue 5)
    "obs_properties_add_group",
    "obs_properties_add_button",
    "obs_properties_add_bool",
    "obs_properties_add_int",
    "obs_properties_add_list",
    "obs_property_list_add_string",
    "obs_property_list_item_count",
    "obs_property_list_item_name",
    "obs_property_list_item_string",
    "obs_property_set_long_description",
    "obs_property_set_enabled",
    "obs_property_set_visible",
    "obs_property_text_set_info_type",
    "obs_property_int_set_suffix",
    "obs_property_group_content",
    "obs_property_button_clicked",
    "obs_property_set_modified_callback",
    "obs_source_set_sync_offset",
    "obs_source_get_sync_offset",
    "obs_data_erase",
    "obs_data_has_user_value",
    "obs_save_source",
    "obs_data_get_obj",
    "obs_data_first",
    "obs_data_item_next",
    "obs_data_item_release",
    "obs_data_item_get_name",
    "obs_data_item_gettype",
    "obs_data_item_get_bool",
    "obs_data_item_has_user_value",
    // obs-websocket's vendor API, through libobs's proc handlers (issue 20)
    "obs_get_proc_handler",
    "proc_handler_call",
    "calldata_set_data",
    "calldata_get_data",
    "obs_data_apply",
    // the overlay's "Open" button
    "obs_property_button_set_type",
    "obs_property_button_set_url",
    // test host (loading the module the way OBS does)
    "obs_startup",
    "obs_shutdown",
    "obs_initialized",
    "obs_reset_video",
    "obs_reset_audio",
    "obs_open_module",
    "obs_init_module",
    "obs_get_module_name",
    "obs_get_module_description",
    "obs_get_version",
    "vsnprintf",
];

const TYPES: &[&str] = &[
    "obs_source_info",
    "obs_source_audio",
    "obs_video_info",
    "obs_audio_info",
    "audio_data",
    "obs_module_t",
];

const VARS: &[&str] = &[
    "LIBOBS_API_.*_VER",
    "LOG_(ERROR|WARNING|INFO|DEBUG)",
    "OBS_SOURCE_(AUDIO|DO_NOT_DUPLICATE)",
    "MAX_AV_PLANES",
    "OBS_VIDEO_SUCCESS",
    "MODULE_SUCCESS",
];

fn main() {
    println!("cargo:rerun-if-changed=src/obs/wrapper.h");
    println!("cargo:rerun-if-changed=build.rs");

    let include_paths = if env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("windows") {
        windows_libobs()
    } else {
        linux_libobs()
    };

    let mut builder = bindgen::Builder::default()
        .header("src/obs/wrapper.h")
        .parse_callbacks(Box::new(bindgen::CargoCallbacks::new()))
        .default_enum_style(bindgen::EnumVariation::Rust {
            non_exhaustive: false,
        })
        // libobs hands back enum values we might not know (newer OBS); keep
        // the ones we read from C as plain integers.
        .constified_enum_module("obs_property_type")
        .constified_enum_module("obs_icon_type")
        .derive_default(true)
        .layout_tests(false)
        .generate_comments(false);
    for path in &include_paths {
        builder = builder.clang_arg(format!("-I{}", path.display()));
    }
    for f in FUNCTIONS {
        builder = builder.allowlist_function(f);
    }
    for t in TYPES {
        builder = builder.allowlist_type(t);
    }
    for v in VARS {
        builder = builder.allowlist_var(v);
    }

    let bindings = builder
        .generate()
        .expect("bindgen failed on the libobs headers (is libclang-dev installed?)");
    let out = PathBuf::from(env::var("OUT_DIR").unwrap()).join("libobs_bindings.rs");
    bindings.write_to_file(&out).expect("writing the bindings");
}

/// libobs through pkg-config (headers and `-lobs`): the Linux build.
fn linux_libobs() -> Vec<PathBuf> {
    match pkg_config::Config::new()
        .atleast_version(MIN_LIBOBS)
        .probe("libobs")
    {
        Ok(lib) => lib.include_paths,
        Err(err) => {
            // One clear line: this is what a new contributor sees first.
            println!(
                "cargo:warning=libobs {MIN_LIBOBS} or newer not found: install the `libobs-dev` \
                 package (Debian/Ubuntu: sudo apt-get install libobs-dev), or run tools/setup.sh"
            );
            panic!("libobs >= {MIN_LIBOBS} not found through pkg-config ({err})");
        }
    }
}

/// The Windows build (tools/windows/build.sh): no pkg-config. The headers come from
/// `LIBOBS_INCLUDE_DIR` (libobs 29.0's, plus the simde headers they include), and `obs.dll` is
/// linked through an import library made here from [`FUNCTIONS`] (a `.def` turned into
/// `libobs.dll.a` by mingw's dlltool), so the list of what we call stays in one place.
/// `LIBOBS_LIB_DIR` instead names a folder that already holds an import library (an OBS SDK's
/// `obs.lib` under MSVC).
fn windows_libobs() -> Vec<PathBuf> {
    println!("cargo:rerun-if-env-changed=LIBOBS_INCLUDE_DIR");
    println!("cargo:rerun-if-env-changed=LIBOBS_LIB_DIR");
    println!("cargo:rerun-if-env-changed=DLLTOOL");
    let include = env::var_os("LIBOBS_INCLUDE_DIR").map(PathBuf::from).expect(
        "LIBOBS_INCLUDE_DIR must name libobs's headers (a folder holding obs-module.h) \
         when building for Windows; see tools/windows/build.sh",
    );
    let out = PathBuf::from(env::var("OUT_DIR").unwrap());
    if let Some(dir) = env::var_os("LIBOBS_LIB_DIR") {
        println!(
            "cargo:rustc-link-search=native={}",
            PathBuf::from(dir).display()
        );
    } else {
        let def = out.join("obs.def");
        std::fs::write(&def, obs_def()).expect("writing obs.def");
        let msvc = env::var("CARGO_CFG_TARGET_ENV").as_deref() == Ok("msvc");
        // mingw's dlltool makes libobs.dll.a; under MSVC (a developer prompt) lib.exe makes obs.lib.
        let (tool, args): (String, Vec<std::ffi::OsString>) = if msvc {
            (
                "lib".into(),
                vec![
                    "/NOLOGO".into(),
                    "/MACHINE:X64".into(),
                    format!("/DEF:{}", def.display()).into(),
                    format!("/OUT:{}", out.join("obs.lib").display()).into(),
                ],
            )
        } else {
            (
                env::var("DLLTOOL").unwrap_or_else(|_| "x86_64-w64-mingw32-dlltool".into()),
                vec![
                    "--input-def".into(),
                    def.clone().into(),
                    "--output-lib".into(),
                    out.join("libobs.dll.a").into(),
                    "--dllname".into(),
                    "obs.dll".into(),
                ],
            )
        };
        let status = std::process::Command::new(&tool)
            .args(&args)
            .status()
            .unwrap_or_else(|e| {
                panic!("{tool} could not run ({e}): it makes obs.dll's import library")
            });
        assert!(status.success(), "{tool} failed on {}", def.display());
        println!("cargo:rustc-link-search=native={}", out.display());
    }
    println!("cargo:rustc-link-lib=dylib=obs");
    // obs-module.h and friends include simde from the folder above `obs/` or beside it.
    let mut paths = vec![include.clone()];
    if let Some(parent) = include.parent() {
        paths.push(parent.to_path_buf());
    }
    paths
}

/// The module definition of `obs.dll`: every libobs function of [`FUNCTIONS`] (`vsnprintf` is
/// the C library's, not libobs's). tests/windows/ builds its libobs test double from the same file.
fn obs_def() -> String {
    let mut def = String::from("LIBRARY obs.dll\nEXPORTS\n");
    for f in FUNCTIONS.iter().filter(|f| !NOT_LIBOBS.contains(f)) {
        def.push_str(f);
        def.push('\n');
    }
    def
}

/// Names in [`FUNCTIONS`] that the C library provides, not libobs.
const NOT_LIBOBS: &[&str] = &["vsnprintf"];
