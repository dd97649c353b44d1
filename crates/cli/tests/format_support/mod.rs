//! Support for the `--format` tests (engine_format.rs,
//! engine_format_cmds.rs): a table's columns and two sample containers.
#![allow(dead_code)]

use crate::common::{unique, EngineEnv};

/// The column where `header` starts in the first line of a table.
pub fn column(table: &str, header: &str) -> usize {
    table
        .lines()
        .next()
        .and_then(|l| l.find(header))
        .unwrap_or_else(|| panic!("no {header} column in {table}"))
}

/// The column names of a table's header line (columns are at least 3
/// spaces apart).
pub fn header_columns(table: &str) -> Vec<&str> {
    table
        .lines()
        .next()
        .unwrap_or_default()
        .split("   ")
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .collect()
}

/// Runs a running container (labels, a published port) and an exited one
/// that wrote 3 bytes; returns their names.
pub fn two_containers(env: &EngineEnv, img: &str) -> (String, String) {
    let web = unique("fweb");
    let ex = unique("fex");
    env.ok(&[
        "run", "-d", "--name", &web, "--label", "b=2", "--label", "a=1", "-p", "18080:80", img,
        "sleep", "1000",
    ]);
    let o = env.berth(&[
        "run",
        "--name",
        &ex,
        img,
        "sh",
        "-c",
        "echo hi > /tmp/f; exit 3",
    ]);
    assert_eq!(o.status.code(), Some(3));
    (web, ex)
}
