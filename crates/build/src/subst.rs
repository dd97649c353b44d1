//! Variable substitution and word splitting of instruction arguments, as
//! the Dockerfile reference ("Environment replacement") describes: `$VAR`,
//! `${VAR}`, `${VAR:-default}`, `${VAR:+alt}` (and the `-`/`+` forms
//! without the colon), single and double quotes, and the escape character.

/// Errors of substitution.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SubstError {
    #[error("unterminated {0} in {1:?}")]
    Unterminated(&'static str, String),
    #[error(
        "bad substitution {0:?}: only ${{VAR}}, ${{VAR:-word}} and ${{VAR:+word}} are supported"
    )]
    BadSubst(String),
}

/// Looks a variable up.
pub type Lookup<'a> = &'a dyn Fn(&str) -> Option<String>;

/// Expands `s` as one word (quotes removed, whitespace kept).
pub fn expand(s: &str, env: Lookup<'_>, escape: char) -> Result<String, SubstError> {
    Ok(process(s, env, escape, false)?.join(""))
}

/// Expands only the variables of `s` (`$V`, `${V}`, `${V:-w}`,
/// `${V:+w}`); quotes stay as written, and the escape character before a
/// `$` makes it literal. For the bodies of COPY/ADD heredocs (BuildKit).
pub fn expand_vars(s: &str, env: Lookup<'_>, escape: char) -> Result<String, SubstError> {
    let chars: Vec<char> = s.chars().collect();
    let mut out = String::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c == escape && chars.get(i + 1) == Some(&'$') {
            out.push('$');
            i += 2;
        } else if c == '$' && matches!(chars.get(i + 1), Some(&n) if n == '{' || is_name(n)) {
            i = variable(&chars, i, env, escape, &mut out, s)?;
        } else {
            out.push(c);
            i += 1;
        }
    }
    Ok(out)
}

/// Splits `s` into words at unquoted whitespace, expanding each.
pub fn words(s: &str, env: Lookup<'_>, escape: char) -> Result<Vec<String>, SubstError> {
    process(s, env, escape, true)
}

/// Splits `s` at unquoted whitespace without touching quotes, escapes or
/// variables (for `KEY=VALUE` lists, whose values are expanded one by one).
pub fn raw_words(s: &str, escape: char) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quote: Option<char> = None;
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == escape && quote != Some('\'') {
            cur.push(c);
            if let Some(n) = chars.next() {
                cur.push(n);
            }
            continue;
        }
        match (c, quote) {
            ('"' | '\'', None) => {
                quote = Some(c);
                cur.push(c);
            }
            (c, Some(q)) if c == q => {
                quote = None;
                cur.push(c);
            }
            (c, None) if c.is_whitespace() => {
                if !cur.is_empty() {
                    out.push(std::mem::take(&mut cur));
                }
            }
            (c, _) => cur.push(c),
        }
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

fn process(s: &str, env: Lookup<'_>, escape: char, split: bool) -> Result<Vec<String>, SubstError> {
    let chars: Vec<char> = s.chars().collect();
    let mut out = Vec::new();
    let mut cur = String::new();
    // Whether the current word has begun (`""` is a word).
    let mut started = false;
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c == escape {
            if let Some(&n) = chars.get(i + 1) {
                cur.push(n);
                i += 2;
            } else {
                cur.push(c);
                i += 1;
            }
            started = true;
            continue;
        }
        match c {
            '\'' => {
                let end = chars[i + 1..]
                    .iter()
                    .position(|&x| x == '\'')
                    .ok_or_else(|| SubstError::Unterminated("single quote", s.into()))?;
                cur.extend(&chars[i + 1..i + 1 + end]);
                i += end + 2;
                started = true;
            }
            '"' => {
                i += 1;
                loop {
                    let Some(&d) = chars.get(i) else {
                        return Err(SubstError::Unterminated("double quote", s.into()));
                    };
                    if d == '"' {
                        i += 1;
                        break;
                    }
                    if d == escape && matches!(chars.get(i + 1), Some('"' | '$')) {
                        cur.push(chars[i + 1]);
                        i += 2;
                    } else if d == escape && chars.get(i + 1) == Some(&escape) {
                        cur.push(escape);
                        i += 2;
                    } else if d == '$' {
                        i = variable(&chars, i, env, escape, &mut cur, s)?;
                    } else {
                        cur.push(d);
                        i += 1;
                    }
                }
                started = true;
            }
            '$' => {
                i = variable(&chars, i, env, escape, &mut cur, s)?;
                started = true;
            }
            c if split && c.is_whitespace() => {
                if started || !cur.is_empty() {
                    out.push(std::mem::take(&mut cur));
                }
                started = false;
                i += 1;
            }
            c => {
                cur.push(c);
                started = true;
                i += 1;
            }
        }
    }
    if started || !cur.is_empty() || !split {
        out.push(cur);
    }
    Ok(out)
}

fn is_name(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// Expands the variable at `chars[i]` (a `$`) into `out`; returns the
/// index after it.
fn variable(
    chars: &[char],
    i: usize,
    env: Lookup<'_>,
    escape: char,
    out: &mut String,
    whole: &str,
) -> Result<usize, SubstError> {
    let mut j = i + 1;
    match chars.get(j) {
        Some('{') => {
            j += 1;
            let start = j;
            while j < chars.len() && is_name(chars[j]) {
                j += 1;
            }
            let name: String = chars[start..j].iter().collect();
            if name.is_empty() {
                return Err(SubstError::BadSubst(whole.into()));
            }
            // The word after the operator runs to the matching `}`.
            let mut depth = 0;
            let op_start = j;
            loop {
                match chars.get(j) {
                    None => return Err(SubstError::Unterminated("${", whole.into())),
                    Some('{') => depth += 1,
                    Some('}') if depth == 0 => break,
                    Some('}') => depth -= 1,
                    _ => {}
                }
                j += 1;
            }
            let tail: String = chars[op_start..j].iter().collect();
            let val = env(&name);
            let (colon, rest) = match tail.strip_prefix(':') {
                Some(r) => (true, r),
                None => (false, tail.as_str()),
            };
            let set = match &val {
                Some(v) => !(colon && v.is_empty()),
                None => false,
            };
            if tail.is_empty() {
                out.push_str(val.as_deref().unwrap_or(""));
            } else if let Some(word) = rest.strip_prefix('-') {
                if set {
                    out.push_str(val.as_deref().unwrap_or(""));
                } else {
                    out.push_str(&expand(word, env, escape)?);
                }
            } else if let Some(word) = rest.strip_prefix('+') {
                if set {
                    out.push_str(&expand(word, env, escape)?);
                }
            } else {
                return Err(SubstError::BadSubst(whole.into()));
            }
            Ok(j + 1)
        }
        Some(&c) if is_name(c) => {
            let start = j;
            while j < chars.len() && is_name(chars[j]) {
                j += 1;
            }
            let name: String = chars[start..j].iter().collect();
            out.push_str(&env(&name).unwrap_or_default());
            Ok(j)
        }
        _ => {
            out.push('$');
            Ok(j)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(k: &str) -> Option<String> {
        match k {
            "A" => Some("one".into()),
            "E" => Some(String::new()),
            "SP" => Some("a b".into()),
            _ => None,
        }
    }

    fn x(s: &str) -> String {
        expand(s, &env, '\\').unwrap()
    }

    #[test]
    fn forms() {
        assert_eq!(x("$A/${A}x"), "one/onex");
        assert_eq!(x("${NO:-def}"), "def");
        assert_eq!(x("${A:-def}"), "one");
        assert_eq!(x("${E:-def}"), "def");
        assert_eq!(x("${E-def}"), "");
        assert_eq!(x("${A:+alt}"), "alt");
        assert_eq!(x("${NO:+alt}"), "");
        assert_eq!(x("${E:+alt}"), "");
        assert_eq!(x("${NO:-${A}}"), "one");
        assert_eq!(x("'$A'"), "$A");
        assert_eq!(x("\"$A b\""), "one b");
        assert_eq!(x("\\$A"), "$A");
        assert_eq!(x("cost $"), "cost $");
        assert!(expand("${A", &env, '\\').is_err());
        assert!(expand("${A:?x}", &env, '\\').is_err());
        assert!(expand("'open", &env, '\\').is_err());
    }

    #[test]
    fn splitting() {
        assert_eq!(
            words("a \"b c\" $SP ''", &env, '\\').unwrap(),
            vec!["a", "b c", "a b", ""]
        );
        assert_eq!(words("a` b", &env, '`').unwrap(), vec!["a b"]);
        assert_eq!(
            raw_words("K=\"v w\" L=x\\ y", '\\'),
            vec!["K=\"v w\"", "L=x\\ y"]
        );
    }
}
