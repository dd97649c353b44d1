//! Container IDs (64 hex digits) and Docker-style generated names
//! (`adjective_scientist`).

use std::io::Read;

/// Errors of making IDs and checking names.
#[derive(Debug, thiserror::Error)]
pub enum NameError {
    #[error("read random bytes from /dev/urandom for a container id")]
    Random(#[source] std::io::Error),
    #[error("invalid container name {0:?}: use [a-zA-Z0-9][a-zA-Z0-9_.-]* (as Docker)")]
    Invalid(String),
}

const ADJECTIVES: &[&str] = &[
    "admiring",
    "brave",
    "clever",
    "dazzling",
    "eager",
    "focused",
    "gifted",
    "happy",
    "jolly",
    "keen",
    "lucid",
    "modest",
    "nifty",
    "optimistic",
    "peaceful",
    "quirky",
    "relaxed",
    "serene",
    "tender",
    "upbeat",
    "vibrant",
    "wizardly",
    "youthful",
    "zealous",
    "bold",
    "calm",
    "epic",
    "fervent",
    "gallant",
    "hopeful",
];

const SURNAMES: &[&str] = &[
    "lovelace",
    "turing",
    "hopper",
    "curie",
    "noether",
    "ritchie",
    "thompson",
    "torvalds",
    "knuth",
    "dijkstra",
    "hamilton",
    "johnson",
    "kare",
    "liskov",
    "meitner",
    "shannon",
    "tesla",
    "wozniak",
    "yalow",
    "babbage",
    "bell",
    "franklin",
    "goldberg",
    "hypatia",
    "lamarr",
    "mirzakhani",
    "pike",
    "sammet",
    "wilson",
    "khorana",
];

fn random_bytes<const N: usize>() -> Result<[u8; N], NameError> {
    let mut buf = [0u8; N];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut buf))
        .map_err(NameError::Random)?;
    Ok(buf)
}

/// A new random container ID: 64 lowercase hex digits.
pub fn new_id() -> Result<String, NameError> {
    Ok(random_bytes::<32>()?
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect())
}

/// A generated name from two random indices; a number is appended after
/// the first attempt (`attempt` > 0) to step around collisions.
pub fn generated_name(attempt: u32) -> Result<String, NameError> {
    let r = random_bytes::<4>()?;
    let a = ADJECTIVES[usize::from(r[0]) % ADJECTIVES.len()];
    let s = SURNAMES[usize::from(r[1]) % SURNAMES.len()];
    Ok(if attempt == 0 {
        format!("{a}_{s}")
    } else {
        format!("{a}_{s}{}", u16::from_le_bytes([r[2], r[3]]) % 1000)
    })
}

/// Docker's name rule: `[a-zA-Z0-9][a-zA-Z0-9_.-]*`; a leading `/` is
/// dropped as Docker does.
pub fn check_name(name: &str) -> Result<String, NameError> {
    let n = name.strip_prefix('/').unwrap_or(name);
    let mut chars = n.chars();
    let ok = chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
        && n.len() <= 128;
    if ok {
        Ok(n.to_string())
    } else {
        Err(NameError::Invalid(name.into()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_64_hex_and_differ() {
        let a = new_id().expect("id");
        let b = new_id().expect("id");
        assert_eq!(a.len(), 64);
        assert!(a
            .bytes()
            .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()));
        assert_ne!(a, b);
    }

    #[test]
    fn generated_names_are_valid() {
        for i in 0..20 {
            let n = generated_name(i % 2).expect("name");
            assert!(check_name(&n).is_ok(), "{n}");
            assert!(n.contains('_'));
        }
    }

    #[test]
    fn name_rule() {
        assert_eq!(check_name("/web-1.a_b").expect("ok"), "web-1.a_b");
        for bad in ["", "-x", "a b", "a/b", "_x"] {
            assert!(check_name(bad).is_err(), "{bad:?}");
        }
    }
}
