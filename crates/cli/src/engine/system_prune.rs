//! `berth system prune [-a] [-f]`: removes stopped containers, networks
//! no container uses (never the default one), then images no container uses (unnamed ones; all of them with `-a`), through
//! the same code as `container prune` and `image prune`, and reports what
//! was freed.

use std::io::{BufRead, Write};
use std::path::Path;

use anyhow::Result;
use berth_engine::ops;
use clap::Args;

use super::format::human_size;
use super::run::EngineArgs;

#[derive(Debug, Args)]
pub struct PruneArgs {
    /// Remove every unused image, not only unnamed ones.
    #[arg(short, long)]
    pub all: bool,
    /// Do not ask for confirmation.
    #[arg(short, long)]
    pub force: bool,
}

/// The question asked without `-f`.
pub fn warning(all: bool) -> String {
    let images = if all {
        "all images without at least one container associated to them"
    } else {
        "all dangling images"
    };
    format!(
        "WARNING! This will remove:\n  - all stopped containers\n  - all networks not used by at least one container\n  - {images}\n\
         Are you sure you want to continue? [y/N] "
    )
}

/// Whether an answer to [`warning`] means yes.
pub fn confirmed(answer: &str) -> bool {
    matches!(answer.trim().to_ascii_lowercase().as_str(), "y" | "yes")
}

/// The question of `container|image|volume|network prune` without `-f`
/// (podman's words): asked only when stdin is a terminal; a script's
/// prune goes ahead (podman asks anyway and fails on end of input).
/// True to go ahead.
pub fn ask_on_terminal(command: &str, question: &str) -> Result<bool> {
    use std::io::IsTerminal;
    if !std::io::stdin().is_terminal() {
        return Ok(true);
    }
    eprint!("{question}\nAre you sure you want to continue? [y/N] ");
    let _ = std::io::stderr().flush();
    let mut answer = String::new();
    std::io::stdin().lock().read_line(&mut answer)?;
    if confirmed(&answer) {
        return Ok(true);
    }
    eprintln!("{command}: not confirmed, nothing removed (use -f to skip the question)");
    Ok(false)
}

/// Bytes under `dir`, not following symlinks nor crossing into mounts
/// (a missing dir counts 0).
pub fn dir_size(dir: &Path) -> u64 {
    let Ok(md) = std::fs::symlink_metadata(dir) else {
        return 0;
    };
    if !md.is_dir() {
        return md.len();
    }
    if berth_image::mount::is_mountpoint(dir) {
        return 0;
    }
    std::fs::read_dir(dir)
        .map(|entries| entries.flatten().map(|e| dir_size(&e.path())).sum())
        .unwrap_or(0)
}

/// `system prune`.
pub fn prune(root: &Path, e: &EngineArgs, a: &PruneArgs) -> Result<()> {
    if !a.force {
        eprint!("{}", warning(a.all));
        let _ = std::io::stderr().flush();
        let mut answer = String::new();
        std::io::stdin().lock().read_line(&mut answer)?;
        if !confirmed(&answer) {
            eprintln!("system prune: not confirmed, nothing removed (use -f to skip the question)");
            return Ok(());
        }
    }
    let engine = e.engine(root)?;
    let mut freed = 0u64;
    // Container sizes are read before removal: their writable layers.
    let sizes: Vec<(String, u64)> = engine
        .db()?
        .list()?
        .into_iter()
        .map(|r| {
            let size = dir_size(&engine.dir(&r.id));
            (r.id, size)
        })
        .collect();
    let removed = ops::prune(&engine)?;
    if !removed.is_empty() {
        println!("Deleted Containers:");
        for id in &removed {
            println!("{id}");
            freed += sizes.iter().find(|(i, _)| i == id).map_or(0, |(_, s)| *s);
        }
        println!();
    }
    let networks = berth_engine::networks::prune(&engine)?;
    if !networks.is_empty() {
        println!("Deleted Networks:");
        for n in &networks {
            println!("{n}");
        }
        println!();
    }
    let (images, report) = super::images::prune_images(root, a.all)?;
    if !images.is_empty() {
        println!("Deleted Images:");
        for id in &images {
            println!("{id}");
        }
        println!();
    }
    freed += report.bytes_freed;
    println!("Total reclaimed space: {}", human_size(freed));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers() {
        assert!(confirmed("y\n"));
        assert!(confirmed("YES"));
        assert!(!confirmed(""));
        assert!(!confirmed("n\n"));
    }

    #[test]
    fn warning_names_the_images() {
        assert!(warning(true).contains("all images without"));
        assert!(warning(false).contains("dangling"));
    }

    #[test]
    fn dir_size_counts_files() {
        let d = tempfile::tempdir().expect("tempdir");
        std::fs::write(d.path().join("a"), [0u8; 100]).expect("write");
        std::fs::create_dir(d.path().join("sub")).expect("mkdir");
        std::fs::write(d.path().join("sub/b"), [0u8; 50]).expect("write");
        assert_eq!(dir_size(d.path()), 150);
        assert_eq!(dir_size(&d.path().join("missing")), 0);
    }
}
