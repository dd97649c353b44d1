//! Containerfile parsing (the Dockerfile reference's "Format", "Parser
//! directives" and per-instruction syntax): logical lines joined at the
//! escape character, comments dropped, `# escape=` and `# syntax=`
//! directives, `--flag=value` options, and exec (JSON) vs shell forms.

/// Instructions of the Dockerfile reference.
pub const KNOWN: &[&str] = &[
    "FROM",
    "RUN",
    "CMD",
    "LABEL",
    "MAINTAINER",
    "EXPOSE",
    "ENV",
    "ADD",
    "COPY",
    "ENTRYPOINT",
    "VOLUME",
    "USER",
    "WORKDIR",
    "ARG",
    "ONBUILD",
    "STOPSIGNAL",
    "HEALTHCHECK",
    "SHELL",
];

/// Errors of parsing, each naming the line.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ParseError {
    #[error("line {line}: unknown instruction {word:?}")]
    Unknown { line: usize, word: String },
    #[error("line {line}: {instr} is not supported yet by berth build")]
    Unsupported { line: usize, instr: String },
    #[error("line {line}: {what}")]
    Bad { line: usize, what: String },
    #[error("the Containerfile has no FROM instruction")]
    NoFrom,
}

/// An instruction's arguments: exec form (a JSON array) or shell form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Form {
    Exec(Vec<String>),
    Shell(String),
}

/// One instruction (a logical line).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Instruction {
    /// 1-based line where it starts.
    pub line: usize,
    /// Upper-case keyword.
    pub keyword: String,
    /// `--name=value` flags before the arguments (value empty for `--name`).
    pub flags: Vec<(String, String)>,
    /// The arguments after the flags, continuations joined.
    pub args: String,
    /// Heredocs of a RUN, in order.
    pub heredocs: Vec<Heredoc>,
}

impl Instruction {
    /// The arguments in exec form when they are a JSON string array, else
    /// shell form (Docker's fallback for anything that is not valid JSON).
    pub fn form(&self) -> Form {
        let t = self.args.trim();
        if t.starts_with('[') {
            if let Ok(v) = serde_json::from_str::<Vec<String>>(t) {
                return Form::Exec(v);
            }
        }
        Form::Shell(t.to_string())
    }

    /// The instruction as written on one line (for progress and history).
    pub fn text(&self) -> String {
        let mut s = self.keyword.clone();
        for (k, v) in &self.flags {
            s.push_str(&format!(" --{k}"));
            if !v.is_empty() {
                s.push_str(&format!("={v}"));
            }
        }
        if !self.args.is_empty() {
            s.push(' ');
            s.push_str(&self.args);
        }
        for h in &self.heredocs {
            s.push('\n');
            s.push_str(&h.body);
            s.push_str(&h.name);
        }
        s
    }

    /// The value of flag `name`, if given.
    pub fn flag(&self, name: &str) -> Option<&str> {
        self.flags
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// Fails unless every flag is one of `allowed`.
    pub fn check_flags(&self, allowed: &[&str]) -> Result<(), ParseError> {
        for (k, _) in &self.flags {
            if !allowed.contains(&k.as_str()) {
                return Err(ParseError::Bad {
                    line: self.line,
                    what: format!(
                        "{} --{k} is not supported{}",
                        self.keyword,
                        if allowed.is_empty() {
                            String::new()
                        } else {
                            format!(" (supported: --{})", allowed.join(", --"))
                        }
                    ),
                });
            }
        }
        Ok(())
    }
}

/// A parsed Containerfile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Containerfile {
    /// The escape character (`\` unless the `escape` directive says `` ` ``).
    pub escape: char,
    pub instructions: Vec<Instruction>,
}

/// Splits `--flag=value` words off the front of `rest`.
fn split_flags(rest: &str) -> (Vec<(String, String)>, String) {
    let mut flags = Vec::new();
    let mut r = rest.trim_start();
    while let Some(f) = r.strip_prefix("--") {
        let end = f.find(char::is_whitespace).unwrap_or(f.len());
        let word = &f[..end];
        if word.is_empty() {
            break;
        }
        let (k, v) = word.split_once('=').unwrap_or((word, ""));
        flags.push((k.to_ascii_lowercase(), v.to_string()));
        r = f[end..].trim_start();
    }
    (flags, r.to_string())
}

/// A heredoc (`<<EOF`, `<<-EOF`, `<<"EOF"`) of a RUN.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Heredoc {
    /// The delimiter word.
    pub name: String,
    /// `<<-`: leading tabs stripped from the body lines.
    pub strip_tabs: bool,
    /// `<<"EOF"` or `<<'EOF'`: no variable expansion in a COPY/ADD body.
    pub quoted: bool,
    /// The lines between the instruction and the delimiter.
    pub body: String,
}

/// The heredoc delimiters a shell-form argument opens, in order:
/// `(name, strip_tabs, quoted)`.
fn heredoc_words(args: &str) -> Vec<(String, bool, bool)> {
    let mut out = Vec::new();
    for w in args.split_whitespace() {
        let w = w.trim_start_matches(|c: char| c.is_ascii_digit());
        let Some(r) = w.strip_prefix("<<") else {
            continue;
        };
        let strip = r.starts_with('-');
        let r = r.trim_start_matches('-');
        let quoted = r.starts_with(['"', '\'']);
        let r = r.trim_matches(['"', '\'']);
        let name: String = r
            .chars()
            .take_while(|c| !c.is_whitespace() && !"<>|;&()'\"$`".contains(*c))
            .collect();
        if name.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_') {
            out.push((name, strip, quoted));
        }
    }
    out
}

/// Parses a Containerfile.
pub fn parse(text: &str) -> Result<Containerfile, ParseError> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let lines: Vec<&str> = text.lines().collect();
    let mut escape = '\\';
    let mut i = 0;
    // Parser directives: `# key=value` lines at the very top.
    while i < lines.len() {
        let Some(body) = lines[i].trim().strip_prefix('#') else {
            break;
        };
        let Some((k, v)) = body.split_once('=') else {
            break;
        };
        let k = k.trim().to_ascii_lowercase();
        if k.contains(char::is_whitespace) {
            break;
        }
        match k.as_str() {
            "escape" => {
                escape = match v.trim() {
                    "\\" => '\\',
                    "`" => '`',
                    other => {
                        return Err(ParseError::Bad {
                            line: i + 1,
                            what: format!("escape directive {other:?}: must be \\ or `"),
                        })
                    }
                }
            }
            // The frontend image to use: berth is its own frontend.
            "syntax" | "check" => {}
            _ => break,
        }
        i += 1;
    }
    let mut instructions = Vec::new();
    while i < lines.len() {
        let first = lines[i].trim();
        if first.is_empty() || first.starts_with('#') {
            i += 1;
            continue;
        }
        let start = i;
        let mut logical = String::new();
        loop {
            let raw = lines[i];
            let t = raw.trim_end();
            i += 1;
            if let Some(body) = t.strip_suffix(escape) {
                logical.push_str(body);
                // Comment and empty lines inside a continuation are dropped.
                while i < lines.len() {
                    let n = lines[i].trim();
                    if n.is_empty() || n.starts_with('#') {
                        i += 1;
                    } else {
                        break;
                    }
                }
                if i >= lines.len() {
                    break;
                }
            } else {
                logical.push_str(t);
                break;
            }
        }
        let logical = logical.trim();
        let (word, rest) = logical
            .split_once(char::is_whitespace)
            .unwrap_or((logical, ""));
        let keyword = word.to_ascii_uppercase();
        let line = start + 1;
        if !KNOWN.contains(&keyword.as_str()) {
            return Err(ParseError::Unknown {
                line,
                word: word.to_string(),
            });
        }
        if keyword == "ONBUILD" {
            // Dockerfile reference: the trigger is any instruction but
            // ONBUILD, FROM and MAINTAINER.
            let t = rest
                .split_whitespace()
                .next()
                .unwrap_or("")
                .to_ascii_uppercase();
            if matches!(t.as_str(), "" | "ONBUILD" | "FROM" | "MAINTAINER")
                || !KNOWN.contains(&t.as_str())
            {
                return Err(ParseError::Bad {
                    line,
                    what: format!("ONBUILD {t:?}: the trigger must be an instruction other than ONBUILD, FROM and MAINTAINER"),
                });
            }
        }
        let (flags, args) = if matches!(
            keyword.as_str(),
            "FROM" | "RUN" | "COPY" | "ADD" | "HEALTHCHECK"
        ) {
            split_flags(rest)
        } else {
            (Vec::new(), rest.trim().to_string())
        };
        let words = if args.trim_start().starts_with('[') {
            Vec::new()
        } else {
            heredoc_words(&args)
        };
        let mut heredocs = Vec::new();
        if matches!(keyword.as_str(), "RUN" | "COPY" | "ADD") {
            for (name, strip_tabs, quoted) in words {
                let mut body = String::new();
                loop {
                    let Some(l) = lines.get(i) else {
                        return Err(ParseError::Bad {
                            line,
                            what: format!("heredoc {name} has no closing {name} line"),
                        });
                    };
                    i += 1;
                    let l = if strip_tabs {
                        l.trim_start_matches('\t')
                    } else {
                        l
                    };
                    if l == name {
                        break;
                    }
                    body.push_str(l);
                    body.push('\n');
                }
                heredocs.push(Heredoc {
                    name,
                    strip_tabs,
                    quoted,
                    body,
                });
            }
        }
        instructions.push(Instruction {
            line,
            keyword,
            flags,
            args,
            heredocs,
        });
    }
    let first = instructions.iter().find(|i| i.keyword != "ARG");
    match first {
        Some(i) if i.keyword == "FROM" => {}
        Some(i) => {
            return Err(ParseError::Bad {
                line: i.line,
                what: format!("{} before the first FROM", i.keyword),
            })
        }
        None => return Err(ParseError::NoFrom),
    }
    Ok(Containerfile {
        escape,
        instructions,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn continuations_comments_and_forms() {
        let f = parse(
            "# syntax=docker/dockerfile:1\n\
             ARG V=1\n\
             from busybox AS base\n\
             # a comment\n\
             RUN echo a \\\n\
             # dropped inside the continuation\n\
             \n\
               && echo b\n\
             CMD [\"sh\", \"-c\", \"x\"]\n\
             COPY --chown=1:2 --from=base a b\n\
             ENTRYPOINT [not json\n",
        )
        .unwrap();
        let k: Vec<&str> = f.instructions.iter().map(|i| i.keyword.as_str()).collect();
        assert_eq!(k, ["ARG", "FROM", "RUN", "CMD", "COPY", "ENTRYPOINT"]);
        assert_eq!(f.instructions[1].args, "busybox AS base");
        assert_eq!(f.instructions[2].line, 5);
        assert_eq!(f.instructions[2].args, "echo a && echo b");
        assert_eq!(
            f.instructions[3].form(),
            Form::Exec(vec!["sh".into(), "-c".into(), "x".into()])
        );
        assert_eq!(f.instructions[4].flag("chown"), Some("1:2"));
        assert_eq!(f.instructions[4].flag("from"), Some("base"));
        assert_eq!(f.instructions[4].args, "a b");
        assert_eq!(f.instructions[5].form(), Form::Shell("[not json".into()));
    }

    #[test]
    fn heredocs() {
        let f = parse("FROM a\nRUN <<EOF\necho 1\n  echo 2\nEOF\nRUN cat <<-'A' > /f && cat <<B\n\tx\n\tA\ny\nB\nCMD x\n")
            .unwrap();
        let k: Vec<&str> = f.instructions.iter().map(|i| i.keyword.as_str()).collect();
        assert_eq!(k, ["FROM", "RUN", "RUN", "CMD"]);
        assert_eq!(f.instructions[1].heredocs[0].body, "echo 1\n  echo 2\n");
        let h = &f.instructions[2].heredocs;
        assert_eq!(
            (h[0].name.as_str(), h[0].strip_tabs, h[0].body.as_str()),
            ("A", true, "x\n")
        );
        assert_eq!((h[1].name.as_str(), h[1].body.as_str()), ("B", "y\n"));
        assert_eq!(f.instructions[3].line, 11);
    }

    #[test]
    fn escape_directive() {
        let f = parse("# escape=`\nFROM x\nRUN dir c:\\ `\n  /w\n").unwrap();
        assert_eq!(f.escape, '`');
        assert_eq!(f.instructions[1].args, "dir c:\\   /w");
        // After the first instruction, it is a comment.
        let f = parse("FROM x\n# escape=`\nRUN a `\n").unwrap();
        assert_eq!(f.escape, '\\');
        assert!(parse("# escape=x\nFROM a\n").is_err());
    }

    #[test]
    fn errors_name_the_line() {
        assert_eq!(
            parse("FROM a\n\nFROB x\n").unwrap_err(),
            ParseError::Unknown {
                line: 3,
                word: "FROB".into()
            }
        );
        assert!(parse("FROM a\nONBUILD FROM x\n")
            .unwrap_err()
            .to_string()
            .contains("line 2: ONBUILD"));
        assert!(parse("FROM a\nONBUILD RUN x\n").is_ok());
        let f = parse("FROM a\nCOPY <<EOF <<'B' /x/\n$x\nEOF\ny\nB\n").unwrap();
        let h = &f.instructions[1].heredocs;
        assert_eq!((h[0].quoted, h[0].body.as_str()), (false, "$x\n"));
        assert_eq!((h[1].name.as_str(), h[1].quoted), ("B", true));
        assert!(parse("FROM a\nRUN <<EOF\nx\n")
            .unwrap_err()
            .to_string()
            .contains("line 2: heredoc EOF has no closing"));
        assert!(parse("RUN x\n").is_err());
        assert_eq!(parse("# only\n").unwrap_err(), ParseError::NoFrom);
    }
}
