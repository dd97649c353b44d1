//! `--format` templates: Go's text/template (through the `gtmpl` crate)
//! with the functions Docker and podman add (`json`, `join`, `lower`,
//! `upper`, `title`, `split`, `truncate`, `pad`), and `table` output with
//! a header row and columns aligned as Docker's tabwriter aligns them.
//!
//! The glue around `gtmpl`: JSON values become template values (objects
//! whose keys are all capitalized act as Go structs: a missing field is an
//! error; other objects act as Go maps), printed values read as Go prints
//! them (`[a b]`, `map[k:v]`), and `range` over a map walks its keys in
//! order and runs its `else` only when empty, as Go does. The last two are
//! done by rewriting the template's actions before `gtmpl` parses it.
//!
//! API: [`render`] one value; [`Format::parse`] then [`Format::rows`] for
//! list commands (`ps`, `images`, ...) with their headers.

use std::collections::HashMap;
use std::io::Write;

use anyhow::{anyhow, bail, Result};
use gtmpl::{Context, Func, FuncError, Template, Value};
use serde_json::Value as Json;

/// What a `--format` asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Format {
    /// `json`: the command's JSON document.
    Json,
    /// `table` or `table TEMPLATE`: a header row then aligned rows (the
    /// command's default columns when `None`).
    Table(Option<String>),
    /// Any other text: the template, one output line per value.
    Template(String),
}

impl Format {
    /// Reads a `--format` value (`""` is the default table).
    pub fn parse(s: &str) -> Format {
        let t = s.trim();
        if t.is_empty() || t == "table" {
            Format::Table(None)
        } else if t == "json" {
            Format::Json
        } else if let Some(rest) = t.strip_prefix("table") {
            let rest = unescape(rest);
            if rest.starts_with(char::is_whitespace) {
                Format::Table(Some(rest.trim().to_string()))
            } else {
                Format::Template(unescape(s))
            }
        } else {
            Format::Template(unescape(s))
        }
    }

    /// Renders list rows: a table (header from `headers`, Docker's column
    /// names; fields not named there get their name in capitals) or one
    /// line per row. `default` is the command's default table template.
    pub fn rows(&self, default: &str, headers: &[(&str, &str)], rows: &[Json]) -> Result<String> {
        match self {
            Format::Json => {
                let mut s = serde_json::to_string_pretty(rows)?;
                s.push('\n');
                Ok(s)
            }
            Format::Table(t) => {
                let t = t.as_deref().unwrap_or(default);
                table(t, headers, rows)
            }
            Format::Template(t) => {
                let tpl = Compiled::new(t)?;
                let mut out = String::new();
                for r in rows {
                    out.push_str(&tpl.render(r)?);
                    out.push('\n');
                }
                Ok(out)
            }
        }
    }
}

/// Docker turns the two characters `\t` and `\n` of a `--format` into a
/// tab and a newline.
fn unescape(s: &str) -> String {
    s.replace("\\t", "\t").replace("\\n", "\n")
}

/// Renders `template` with `value` as its dot.
pub fn render(template: &str, value: &Json) -> Result<String> {
    Compiled::new(template)?.render(value)
}

/// Renders `template` for each value, one line each (what `inspect
/// --format` prints).
pub fn render_lines(template: &str, values: &[Json]) -> Result<String> {
    let tpl = Compiled::new(&unescape(template))?;
    let mut out = String::new();
    for v in values {
        out.push_str(&tpl.render(v)?);
        out.push('\n');
    }
    Ok(out)
}

/// A template parsed once and rendered for many values (what a stream
/// such as `events --format` needs). Takes the text of
/// [`Format::Template`] (`\t` already a tab).
pub struct Parsed(Compiled);

impl Parsed {
    pub fn new(text: &str) -> Result<Parsed> {
        Compiled::new(text).map(Parsed)
    }

    pub fn render(&self, v: &Json) -> Result<String> {
        self.0.render(v)
    }
}

/// A table: the header row (the template rendered over the header names)
/// then one row per value, aligned.
pub fn table(template: &str, headers: &[(&str, &str)], rows: &[Json]) -> Result<String> {
    let tpl = Compiled::new(template)?;
    let mut text = String::new();
    let mut names: HashMap<String, Value> = HashMap::new();
    for (k, v) in headers {
        names.insert((*k).to_string(), Value::from(*v));
    }
    for r in rows {
        if let Json::Object(m) = r {
            for k in m.keys() {
                names
                    .entry(k.clone())
                    .or_insert_with(|| Value::from(header_of(k)));
            }
        }
    }
    text.push_str(&tpl.header(Value::Map(names))?);
    text.push('\n');
    for r in rows {
        text.push_str(&tpl.render(r)?);
        text.push('\n');
    }
    Ok(align(&text))
}

/// `CreatedAt` -> `CREATED AT`: the header Docker gives a field it has no
/// name for.
pub fn header_of(field: &str) -> String {
    let mut out = String::new();
    let chars: Vec<char> = field.chars().collect();
    for (i, c) in chars.iter().enumerate() {
        let next_lower = chars.get(i + 1).is_some_and(|n| n.is_lowercase());
        let prev_lower = i > 0 && chars[i - 1].is_lowercase();
        if i > 0 && c.is_uppercase() && (prev_lower || next_lower) {
            out.push(' ');
        }
        out.extend(c.to_uppercase());
    }
    out
}

/// Aligns tab-separated cells as Docker does (Go's tabwriter with
/// minimum width 10, padding 3): a cell ends at a tab; the text after a
/// line's last tab is not padded.
pub fn align(text: &str) -> String {
    // The crate pads after the minimum width, Go's within it:
    // max(w, 7) + 3 is Go's max(w + 3, 10).
    let mut tw = tabwriter::TabWriter::new(Vec::new()).minwidth(7).padding(3);
    // Writing to a Vec cannot fail.
    let _ = tw.write_all(text.as_bytes());
    let _ = tw.flush();
    let bytes = tw.into_inner().unwrap_or_default();
    // Padding after an empty last column is dropped.
    let mut out = String::new();
    for line in String::from_utf8_lossy(&bytes).split_inclusive('\n') {
        match line.strip_suffix('\n') {
            Some(l) => {
                out.push_str(l.trim_end_matches(' '));
                out.push('\n');
            }
            None => out.push_str(line.trim_end_matches(' ')),
        }
    }
    out
}

/// A parsed template (and its header-rendering twin).
struct Compiled {
    body: Template,
    source: String,
}

impl Compiled {
    fn new(text: &str) -> Result<Compiled> {
        let source = rewrite(text)?;
        let mut body = Template::default();
        body.add_funcs(FUNCS);
        body.parse(source.clone())
            .map_err(|e| anyhow!("invalid --format template {text:?}: {e}"))?;
        Ok(Compiled { body, source })
    }

    fn render(&self, v: &Json) -> Result<String> {
        self.body
            .render(&Context::from(to_value(v)))
            .map_err(|e| anyhow!("--format template: {}", exec_error(&e)))
    }

    /// Renders the header row: every field is its column name, and the
    /// functions that would change a value leave the name as it is.
    fn header(&self, names: Value) -> Result<String> {
        let mut t = Template::default();
        t.add_funcs(FUNCS);
        t.add_funcs(HEADER_FUNCS);
        t.parse(self.source.clone())
            .map_err(|e| anyhow!("invalid --format template: {e}"))?;
        t.render(&Context::from(names))
            .map_err(|e| anyhow!("--format template header: {}", exec_error(&e)))
    }
}

fn exec_error(e: &gtmpl::error::ExecError) -> String {
    use gtmpl::error::ExecError as E;
    match e {
        E::NoFiledFor(f, _) => format!("can't evaluate field {f}"),
        E::OnlyMapsAndObjectsHaveFields => "a field of something that has none".into(),
        E::InvalidRange(v) => format!("range can't iterate over {}", go_string(v)),
        other => other.to_string(),
    }
}

const FUNCS: &[(&str, Func)] = &[
    ("json", json_fn),
    ("join", join_fn),
    ("split", split_fn),
    ("lower", lower_fn),
    ("upper", upper_fn),
    ("title", title_fn),
    ("truncate", truncate_fn),
    ("pad", pad_fn),
    ("len", len_fn),
    ("print", print_fn),
    ("println", println_fn),
    ("printf", printf_fn),
    ("index", index_fn),
    ("berthStr", str_fn),
    ("berthVals", vals_fn),
    ("berthEntries", entries_fn),
    ("berthLabel", label_fn),
];

const HEADER_FUNCS: &[(&str, Func)] = &[
    ("json", first_fn),
    ("join", first_fn),
    ("split", first_fn),
    ("lower", first_fn),
    ("upper", first_fn),
    ("title", first_fn),
    ("truncate", first_fn),
    ("berthLabel", label_header_fn),
];

/// A JSON value as a template value.
pub fn to_value(v: &Json) -> Value {
    match v {
        Json::Null => Value::Nil,
        Json::Bool(b) => Value::Bool(*b),
        Json::Number(n) => {
            if let Some(u) = n.as_u64() {
                Value::from(u)
            } else if let Some(i) = n.as_i64() {
                Value::from(i)
            } else {
                Value::from(n.as_f64().unwrap_or(0.0))
            }
        }
        Json::String(s) => Value::String(s.clone()),
        Json::Array(a) => Value::Array(a.iter().map(to_value).collect()),
        Json::Object(m) => {
            let h: HashMap<String, Value> =
                m.iter().map(|(k, v)| (k.clone(), to_value(v))).collect();
            // Docker's documents are Go structs (capitalized fields);
            // labels, options and the like are maps.
            if !m.is_empty()
                && m.keys()
                    .all(|k| k.starts_with(|c: char| c.is_ascii_uppercase()))
            {
                Value::Object(h)
            } else {
                Value::Map(h)
            }
        }
    }
}

/// A template value as JSON (what `json` prints; keys sorted).
fn to_json(v: &Value) -> Json {
    match v {
        Value::NoValue | Value::Nil | Value::Function(_) => Json::Null,
        Value::Bool(b) => Json::Bool(*b),
        Value::String(s) => Json::String(s.clone()),
        Value::Number(n) => {
            if let Some(u) = n.as_u64() {
                Json::from(u)
            } else if let Some(i) = n.as_i64() {
                Json::from(i)
            } else {
                n.as_f64().map(Json::from).unwrap_or(Json::Null)
            }
        }
        Value::Array(a) => Json::Array(a.iter().map(to_json).collect()),
        Value::Object(m) | Value::Map(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            Json::Object(
                keys.into_iter()
                    .map(|k| (k.clone(), to_json(&m[k])))
                    .collect(),
            )
        }
    }
}

/// A value printed as Go's fmt prints it (`%v`).
pub fn go_string(v: &Value) -> String {
    match v {
        Value::NoValue => "<no value>".into(),
        Value::Nil => "<nil>".into(),
        Value::Bool(b) => b.to_string(),
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        Value::Function(_) => "<func>".into(),
        Value::Array(a) => {
            let items: Vec<String> = a.iter().map(go_string).collect();
            format!("[{}]", items.join(" "))
        }
        Value::Object(m) | Value::Map(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            let items: Vec<String> = keys
                .into_iter()
                .map(|k| format!("{k}:{}", go_string(&m[k])))
                .collect();
            format!("map[{}]", items.join(" "))
        }
    }
}

fn arg<'a>(name: &str, args: &'a [Value], n: usize) -> Result<&'a Value, FuncError> {
    if args.len() != n {
        return Err(FuncError::ExactlyXArgs(name.into(), n));
    }
    Ok(&args[0])
}

fn text(v: &Value) -> String {
    go_string(v)
}

fn json_fn(args: &[Value]) -> Result<Value, FuncError> {
    let v = arg("json", args, 1)?;
    serde_json::to_string(&to_json(v))
        .map(Value::String)
        .map_err(|e| FuncError::Generic(e.to_string()))
}

fn join_fn(args: &[Value]) -> Result<Value, FuncError> {
    let v = arg("join", args, 2)?;
    let sep = text(&args[1]);
    match v {
        Value::Array(a) => Ok(Value::String(
            a.iter().map(text).collect::<Vec<_>>().join(&sep),
        )),
        Value::Nil | Value::NoValue => Ok(Value::from("")),
        other => Err(FuncError::Generic(format!(
            "join: {} is not a list",
            go_string(other)
        ))),
    }
}

fn split_fn(args: &[Value]) -> Result<Value, FuncError> {
    let s = text(arg("split", args, 2)?);
    let sep = text(&args[1]);
    Ok(Value::Array(
        s.split(sep.as_str()).map(Value::from).collect(),
    ))
}

fn lower_fn(args: &[Value]) -> Result<Value, FuncError> {
    Ok(Value::String(text(arg("lower", args, 1)?).to_lowercase()))
}

fn upper_fn(args: &[Value]) -> Result<Value, FuncError> {
    Ok(Value::String(text(arg("upper", args, 1)?).to_uppercase()))
}

/// Go's `strings.Title`: the first letter of each word in capitals.
fn title_fn(args: &[Value]) -> Result<Value, FuncError> {
    let s = text(arg("title", args, 1)?);
    let mut out = String::new();
    let mut start = true;
    for c in s.chars() {
        if start && c.is_alphabetic() {
            out.extend(c.to_uppercase());
        } else {
            out.push(c);
        }
        start = !c.is_alphanumeric() && c != '_' && c != '\'';
    }
    Ok(Value::String(out))
}

fn count(v: &Value) -> Option<usize> {
    match v {
        Value::Number(n) => n.as_u64().map(|u| u as usize),
        Value::String(s) => s.parse().ok(),
        _ => None,
    }
}

/// Docker's `truncate STRING N`: the first N characters.
fn truncate_fn(args: &[Value]) -> Result<Value, FuncError> {
    let s = text(arg("truncate", args, 2)?);
    let n = count(&args[1]).ok_or_else(|| FuncError::Generic("truncate: a length".into()))?;
    Ok(Value::String(s.chars().take(n).collect()))
}

/// Docker's `pad STRING BEFORE AFTER`: spaces around.
fn pad_fn(args: &[Value]) -> Result<Value, FuncError> {
    let s = text(arg("pad", args, 3)?);
    let b = count(&args[1]).unwrap_or(0);
    let a = count(&args[2]).unwrap_or(0);
    Ok(Value::String(format!(
        "{}{s}{}",
        " ".repeat(b),
        " ".repeat(a)
    )))
}

fn len_fn(args: &[Value]) -> Result<Value, FuncError> {
    let n = match arg("len", args, 1)? {
        Value::String(s) => s.len(),
        Value::Array(a) => a.len(),
        Value::Object(m) | Value::Map(m) => m.len(),
        Value::Nil | Value::NoValue => 0,
        other => {
            return Err(FuncError::Generic(format!(
                "len of {} (not a string, list or map)",
                go_string(other)
            )))
        }
    };
    Ok(Value::from(n as u64))
}

/// Go's `index`: a map's missing key is the zero value (an empty string).
fn index_fn(args: &[Value]) -> Result<Value, FuncError> {
    if args.len() < 2 {
        return Err(FuncError::AtLeastXArgs("index".into(), 2));
    }
    let mut cur = args[0].clone();
    for k in &args[1..] {
        cur = match (&cur, k) {
            (Value::Array(a), k) => {
                let i = count(k).ok_or_else(|| {
                    FuncError::Generic(format!("index: {} is not a position", go_string(k)))
                })?;
                a.get(i)
                    .cloned()
                    .ok_or_else(|| FuncError::Generic(format!("index out of range: {i}")))?
            }
            // Docker's maps hold strings: a missing key is "".
            (Value::Object(m) | Value::Map(m), k) => {
                m.get(&text(k)).cloned().unwrap_or(Value::from(""))
            }
            (Value::Nil | Value::NoValue, _) => Value::from(""),
            (other, _) => {
                return Err(FuncError::Generic(format!(
                    "can't index item of type {}",
                    go_string(other)
                )))
            }
        };
    }
    Ok(cur)
}

/// Arguments for gtmpl's printing functions: lists, maps and nil as Go
/// prints them (gtmpl would print Rust's debug form).
fn go_args(args: &[Value]) -> Vec<Value> {
    args.iter()
        .map(|v| match v {
            Value::Array(_) | Value::Object(_) | Value::Map(_) | Value::Nil | Value::NoValue => {
                Value::String(go_string(v))
            }
            other => other.clone(),
        })
        .collect()
}

fn print_fn(args: &[Value]) -> Result<Value, FuncError> {
    gtmpl::funcs::print(&go_args(args))
}

fn println_fn(args: &[Value]) -> Result<Value, FuncError> {
    gtmpl::funcs::println(&go_args(args))
}

fn printf_fn(args: &[Value]) -> Result<Value, FuncError> {
    gtmpl::funcs::printf(&go_args(args))
}

fn first_fn(args: &[Value]) -> Result<Value, FuncError> {
    args.first()
        .cloned()
        .ok_or_else(|| FuncError::AtLeastXArgs("function".into(), 1))
}

/// What an action prints, as Go prints it.
fn str_fn(args: &[Value]) -> Result<Value, FuncError> {
    Ok(Value::String(go_string(arg("berthStr", args, 1)?)))
}

fn sorted(m: &HashMap<String, Value>) -> Vec<(&String, &Value)> {
    let mut v: Vec<_> = m.iter().collect();
    v.sort_by(|a, b| a.0.cmp(b.0));
    v
}

/// What `range` walks: a map's values in key order, a list as it is.
fn vals_fn(args: &[Value]) -> Result<Value, FuncError> {
    Ok(match arg("berthVals", args, 1)? {
        Value::Object(m) | Value::Map(m) => {
            Value::Array(sorted(m).into_iter().map(|(_, v)| v.clone()).collect())
        }
        Value::Nil | Value::NoValue => Value::Array(Vec::new()),
        other => other.clone(),
    })
}

/// What `range $k, $v :=` walks: `[key, value]` pairs in key order.
fn entries_fn(args: &[Value]) -> Result<Value, FuncError> {
    Ok(match arg("berthEntries", args, 1)? {
        Value::Object(m) | Value::Map(m) => Value::Array(
            sorted(m)
                .into_iter()
                .map(|(k, v)| Value::Array(vec![Value::from(k.as_str()), v.clone()]))
                .collect(),
        ),
        Value::Array(a) => Value::Array(
            a.iter()
                .enumerate()
                .map(|(i, v)| Value::Array(vec![Value::from(i as u64), v.clone()]))
                .collect(),
        ),
        Value::Nil | Value::NoValue => Value::Array(Vec::new()),
        other => other.clone(),
    })
}

/// One `{{ ... }}` of a template.
struct Action<'a> {
    /// `{{-` / `-}}`.
    trim_left: bool,
    trim_right: bool,
    body: &'a str,
}

impl Action<'_> {
    fn wrap(&self, body: &str, left: bool, right: bool) -> String {
        format!(
            "{{{{{}{body}{}}}}}",
            if left && self.trim_left { "- " } else { "" },
            if right && self.trim_right { " -" } else { "" }
        )
    }
}

/// Splits a template into text and actions (strings and comments inside
/// actions are skipped whole).
fn split_actions(t: &str) -> Result<Vec<std::result::Result<&str, Action<'_>>>> {
    let mut out = Vec::new();
    let mut rest = t;
    while let Some(start) = rest.find("{{") {
        if start > 0 {
            out.push(Ok(&rest[..start]));
        }
        let inner = &rest[start + 2..];
        let b = inner.as_bytes();
        let mut i = 0;
        let mut end = None;
        while i < b.len() {
            match b[i] {
                q @ (b'"' | b'`' | b'\'') => {
                    i += 1;
                    while i < b.len() && b[i] != q {
                        if b[i] == b'\\' && q != b'`' {
                            i += 1;
                        }
                        i += 1;
                    }
                }
                b'/' if inner[i..].starts_with("/*") => {
                    i += inner[i..].find("*/").map_or(b.len(), |p| p + 1);
                }
                b'}' if inner[i..].starts_with("}}") => {
                    end = Some(i);
                    break;
                }
                _ => {}
            }
            i += 1;
        }
        let Some(end) = end else {
            bail!("invalid --format template {t:?}: unclosed action (missing \"}}}}\")");
        };
        let mut body = &inner[..end];
        let trim_left = body.starts_with("- ") || body == "-";
        if trim_left {
            body = &body[1..];
        }
        let trim_right = body.ends_with(" -");
        if trim_right {
            body = &body[..body.len() - 1];
        }
        out.push(Err(Action {
            trim_left,
            trim_right,
            body,
        }));
        rest = &inner[end + 2..];
    }
    if !rest.is_empty() {
        out.push(Ok(rest));
    }
    Ok(out)
}

/// The first word of an action.
fn keyword(body: &str) -> &str {
    let b = body.trim_start();
    let end = b
        .find(|c: char| !(c.is_alphanumeric() || c == '_'))
        .unwrap_or(b.len());
    &b[..end]
}

/// Whether an action declares or assigns a variable (`$x := ...`).
fn is_assignment(body: &str) -> bool {
    let b = body.trim_start();
    if !b.starts_with('$') {
        return false;
    }
    let end = b.find(['"', '`', '(', '|']).unwrap_or(b.len());
    let head = &b[..end];
    head.contains(":=") || head.contains(" = ") || head.contains("=") && !head.contains("==")
}

/// Rewrites a template for `gtmpl` so it behaves as Go's: printed values
/// go through `berthStr` (Go's formatting), `range` walks maps in key
/// order (`berthVals`, `berthEntries`) and its `else` runs only when
/// nothing was walked.
fn rewrite(t: &str) -> Result<String> {
    enum Block {
        Range(usize),
        Other,
    }
    let mut out = String::new();
    let mut stack: Vec<Block> = Vec::new();
    let mut ranges = 0;
    for part in split_actions(t)? {
        let a = match part {
            Ok(text) => {
                out.push_str(text);
                continue;
            }
            Err(a) => a,
        };
        let body = a.body.trim();
        if body.starts_with("/*") {
            out.push_str(&a.wrap(a.body, true, true));
            continue;
        }
        let calls = label_calls(a.body);
        let a = Action { body: &calls, ..a };
        let body = a.body.trim();
        match keyword(body) {
            "range" => {
                ranges += 1;
                let n = ranges;
                let pipe = body["range".len()..].trim();
                let (decl, expr) = match split_decl(pipe) {
                    Some((d, e)) => (d.to_vec(), e),
                    None => (Vec::new(), pipe),
                };
                let var = format!("$berthR{n}");
                if decl.len() == 2 {
                    let e = format!("$berthE{n}");
                    out.push_str(&a.wrap(&format!("{var} := berthEntries ({expr})"), true, false));
                    out.push_str(&format!("{{{{range {e} := {var}}}}}"));
                    out.push_str(&format!("{{{{{} := index {e} 0}}}}", decl[0]));
                    out.push_str(&a.wrap(&format!("{} := index {e} 1", decl[1]), false, true));
                } else {
                    out.push_str(&a.wrap(&format!("{var} := berthVals ({expr})"), true, false));
                    let d = decl.first().map(|d| format!("{d} := ")).unwrap_or_default();
                    out.push_str(&a.wrap(&format!("range {d}{var}"), false, true));
                }
                stack.push(Block::Range(n));
            }
            "if" | "with" | "define" | "block" => {
                stack.push(Block::Other);
                out.push_str(&a.wrap(a.body, true, true));
            }
            "end" => {
                stack.pop();
                out.push_str(&a.wrap(a.body, true, true));
            }
            "else" => {
                if let Some(Block::Range(n)) = stack.last() {
                    // Go runs a range's else only when it walked nothing.
                    let n = *n;
                    out.push_str(&a.wrap("end", true, false));
                    out.push_str(&a.wrap(&format!("if not $berthR{n}"), false, true));
                    stack.pop();
                    stack.push(Block::Other);
                } else {
                    out.push_str(&a.wrap(a.body, true, true));
                }
            }
            "template" | "break" | "continue" => out.push_str(&a.wrap(a.body, true, true)),
            _ if is_assignment(body) => out.push_str(&a.wrap(a.body, true, true)),
            _ => out.push_str(&a.wrap(&format!("berthStr ({body})"), true, true)),
        }
    }
    Ok(out)
}

/// Docker's rows (`ps`, `volume ls`, `network ls`) have a method with an
/// argument, `{{.Label "key"}}`, which gtmpl cannot call: `X.Label ARG`
/// becomes `(berthLabel X ARG)`, which looks the key up in X's `Labels`.
fn label_calls(body: &str) -> String {
    let b = body.as_bytes();
    let mut out = String::new();
    let mut i = 0;
    let mut copied = 0;
    while i < b.len() {
        match b[i] {
            q @ (b'"' | b'`' | b'\'') => {
                i += 1;
                while i < b.len() && b[i] != q {
                    if b[i] == b'\\' && q != b'`' {
                        i += 1;
                    }
                    i += 1;
                }
                i += 1;
            }
            b'.' if body[i..].starts_with(".Label")
                && body[i + 6..].starts_with(char::is_whitespace) =>
            {
                // The receiver: `.`, `$`, `$x` or a field chain before it.
                let start = body[..i]
                    .rfind(|c: char| c.is_whitespace() || c == '(' || c == '|')
                    .map_or(0, |p| p + 1)
                    .max(copied);
                let recv = match &body[start..i] {
                    "" => ".",
                    r => r,
                };
                // The argument: one token (a string or a variable).
                let rest = &body[i + 6..];
                let arg_at = i + 6 + (rest.len() - rest.trim_start().len());
                let mut j = arg_at;
                if j < b.len() && matches!(b[j], b'"' | b'`') {
                    let q = b[j];
                    j += 1;
                    while j < b.len() && b[j] != q {
                        if b[j] == b'\\' && q != b'`' {
                            j += 1;
                        }
                        j += 1;
                    }
                    j = (j + 1).min(b.len());
                } else {
                    while j < b.len() && !b[j].is_ascii_whitespace() && !matches!(b[j], b')' | b'|')
                    {
                        j += 1;
                    }
                }
                out.push_str(&body[copied..start]);
                out.push_str(&format!("(berthLabel {recv} {})", &body[arg_at..j]));
                copied = j;
                i = j;
            }
            _ => i += 1,
        }
    }
    out.push_str(&body[copied..]);
    out
}

/// `berthLabel ROW KEY`: the value of label KEY in the row's `Labels`
/// (a map, or Docker's `a=1,b=2` text), or nothing.
fn label_fn(args: &[Value]) -> Result<Value, FuncError> {
    let row = arg("Label", args, 2)?;
    let key = text(&args[1]);
    let labels = match row {
        Value::Object(m) | Value::Map(m) => m.get("Labels").cloned().unwrap_or(Value::Nil),
        _ => Value::Nil,
    };
    Ok(Value::String(match labels {
        Value::Object(m) | Value::Map(m) => m.get(&key).map(text).unwrap_or_default(),
        Value::String(s) => label_pairs(&s)
            .into_iter()
            .find(|(k, _)| *k == key)
            .map(|(_, v)| v)
            .unwrap_or_default(),
        _ => String::new(),
    }))
}

/// The header of a `.Label "KEY"` column, as Docker's
/// `SubHeaderContext.Label`: KEY's last dot-separated part with `-` and
/// `_` as spaces (`com.example.tier_name` -> `tier name`).
fn label_header_fn(args: &[Value]) -> Result<Value, FuncError> {
    arg("Label", args, 2)?;
    let key = text(&args[1]);
    let last = key.rsplit('.').next().unwrap_or_default();
    Ok(Value::String(last.replace(['-', '_'], " ")))
}

/// `a=1,b=x,y` -> [(a, 1), (b, "x,y")]: a part without `=` belongs to the
/// value before it.
fn label_pairs(s: &str) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    for part in s.split(',').filter(|p| !p.is_empty()) {
        match (part.split_once('='), out.last_mut()) {
            (Some((k, v)), _) => out.push((k.to_string(), v.to_string())),
            (None, Some(last)) => {
                last.1.push(',');
                last.1.push_str(part);
            }
            (None, None) => out.push((part.to_string(), String::new())),
        }
    }
    out
}

/// `$k, $v := PIPE` -> (["$k", "$v"], "PIPE").
fn split_decl(pipe: &str) -> Option<(Vec<&str>, &str)> {
    if !pipe.starts_with('$') {
        return None;
    }
    let (head, expr) = pipe.split_once(":=")?;
    let vars: Vec<&str> = head.split(',').map(str::trim).collect();
    if vars.iter().all(|v| v.starts_with('$') && !v.contains(' ')) {
        Some((vars, expr.trim()))
    } else {
        None
    }
}

#[cfg(test)]
mod tests;
