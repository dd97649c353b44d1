//! Print berth's default seccomp profile (`berth_seccomp::defaults::
//! default_profile()`) as the JSON of config.json's `linux.seccomp`
//! (runtime-spec config-linux.md "Seccomp"), so scripts such as
//! bench/lifecycle.sh can load the same profile into any runtime:
//!
//! ```text
//! cargo run -q -p berth-seccomp --example default_profile > seccomp.json
//! ```

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let profile = berth_seccomp::defaults::default_profile();
    println!("{}", serde_json::to_string_pretty(&profile)?);
    Ok(())
}
