//! Gives the shared library (libmidge.so) a SONAME on Linux, so a program
//! linked against it records the C ABI it was built for:
//! libmidge.so.0.MINOR while midge is 0.x (a minor release may change the
//! C API), libmidge.so.MAJOR from 1.0 on. scripts/install-lib.sh installs
//! the library under that name.

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    let var = |name: &str| std::env::var(name).unwrap_or_default();
    if var("CARGO_CFG_TARGET_OS") != "linux" {
        return;
    }
    let (major, minor) = (
        var("CARGO_PKG_VERSION_MAJOR"),
        var("CARGO_PKG_VERSION_MINOR"),
    );
    let abi = if major == "0" {
        format!("0.{minor}")
    } else {
        major
    };
    println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,libmidge.so.{abi}");
}
