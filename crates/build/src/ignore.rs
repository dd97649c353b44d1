//! `.containerignore` / `.dockerignore`: context paths COPY and ADD do
//! not see, with Docker's rules (moby patternmatcher): one pattern a
//! line, `#` comments, `!` re-includes, `*` and `?` within one path
//! component, `**` across any number; the last matching line decides, and
//! a pattern that matches a directory matches everything under it.

use std::path::{Path, PathBuf};

use crate::BuildError;

/// The ignore rules of one context.
#[derive(Debug, Default)]
pub struct Ignore {
    /// The context (canonical); rules apply to paths below it.
    root: PathBuf,
    rules: Vec<(bool, glob::Pattern)>,
}

const OPTS: glob::MatchOptions = glob::MatchOptions {
    case_sensitive: true,
    require_literal_separator: true,
    require_literal_leading_dot: false,
};

impl Ignore {
    /// Reads `.containerignore`, else `.dockerignore`, of `context`.
    pub fn load(context: &Path) -> Result<Ignore, BuildError> {
        let root = std::fs::canonicalize(context)
            .map_err(|e| BuildError::Other(format!("open {}: {e}", context.display())))?;
        for name in [".containerignore", ".dockerignore"] {
            let p = root.join(name);
            if let Ok(text) = std::fs::read_to_string(&p) {
                return Ignore::parse(root, &text)
                    .map_err(|e| BuildError::Other(format!("{}: {e}", p.display())));
            }
        }
        Ok(Ignore {
            root,
            rules: Vec::new(),
        })
    }

    fn parse(root: PathBuf, text: &str) -> Result<Ignore, String> {
        let mut rules = Vec::new();
        for line in text.lines() {
            let t = line.trim();
            if t.is_empty() || t.starts_with('#') {
                continue;
            }
            let (neg, pat) = match t.strip_prefix('!') {
                Some(p) => (true, p.trim()),
                None => (false, t),
            };
            // filepath.Clean, then relative to the context.
            let mut parts: Vec<&str> = Vec::new();
            for c in pat.split('/') {
                match c {
                    "" | "." => {}
                    ".." => {
                        parts.pop();
                    }
                    c => parts.push(c),
                }
            }
            if parts.is_empty() {
                continue;
            }
            let p = glob::Pattern::new(&parts.join("/"))
                .map_err(|e| format!("bad pattern {pat:?}: {e}"))?;
            rules.push((neg, p));
        }
        Ok(Ignore { root, rules })
    }

    /// Whether `path` (absolute, under the context) is excluded.
    pub fn excluded(&self, path: &Path) -> bool {
        let Ok(rel) = path.strip_prefix(&self.root) else {
            return false;
        };
        if rel.as_os_str().is_empty() {
            return false;
        }
        let mut out = false;
        for (neg, pat) in &self.rules {
            let hit = rel
                .ancestors()
                .filter(|a| !a.as_os_str().is_empty())
                .any(|a| pat.matches_path_with(a, OPTS));
            if hit {
                out = !neg;
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_rules() {
        let root = PathBuf::from("/ctx");
        let i = Ignore::parse(
            root.clone(),
            "# comment\n*.md\n!README.md\n/build/\n**/*.tmp\nsecret\n!secret/keep\n",
        )
        .unwrap();
        let x = |p: &str| i.excluded(&root.join(p));
        assert!(x("notes.md"));
        assert!(!x("README.md"));
        assert!(!x("docs/notes.md"), "* stays within one component");
        assert!(x("build"));
        assert!(x("build/out/a"), "a matched dir excludes what it holds");
        assert!(x("a/b/c.tmp"));
        assert!(x("c.tmp"));
        assert!(x("secret/other"));
        assert!(!x("secret/keep"));
        assert!(!x("src/main.rs"));
    }
}
