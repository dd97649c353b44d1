//! Output helpers shared by the engine commands.

/// Sizes as podman prints them (SI units, 3 significant digits).
pub fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 6] = ["B", "kB", "MB", "GB", "TB", "PB"];
    let mut v = bytes as f64;
    let mut i = 0;
    while v >= 1000.0 && i < UNITS.len() - 1 {
        v /= 1000.0;
        i += 1;
    }
    if i == 0 {
        format!("{bytes} B")
    } else {
        format!("{:.3} {}", v, UNITS[i])
            .replace(".000 ", " ")
            .to_string()
    }
}

/// Prints rows as left-aligned columns separated by 3 spaces.
pub fn print_table(header: &[&str], rows: &[Vec<String>]) {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            widths[i] = widths[i].max(c.chars().count());
        }
    }
    let line = |cells: Vec<String>| {
        let n = cells.len();
        let mut s = String::new();
        for (i, c) in cells.into_iter().enumerate() {
            if i + 1 == n {
                s.push_str(&c);
            } else {
                s.push_str(&format!("{:<w$}   ", c, w = widths[i]));
            }
        }
        println!("{}", s.trim_end());
    };
    line(header.iter().map(|h| h.to_string()).collect());
    for r in rows {
        line(r.clone());
    }
}

/// A listing's `-q` output: one ID a line, 12 hex digits unless `no_trunc`
/// (`ps -q`, `pod ps -q`).
pub fn print_ids<'a>(ids: impl IntoIterator<Item = &'a str>, no_trunc: bool) {
    for id in ids {
        println!(
            "{}",
            if no_trunc {
                id
            } else {
                &id[..id.len().min(12)]
            }
        );
    }
}

/// Prints a listing per its `--format` (`ps`, `pod ps`): the JSON
/// documents for `json` (made only then), else `rows` as the table
/// (`default` columns, `headers`) or the template asks.
pub fn print_listing(
    format: &str,
    json: impl FnOnce() -> anyhow::Result<Vec<serde_json::Value>>,
    default: &str,
    headers: &[(&str, &str)],
    rows: impl FnOnce() -> anyhow::Result<Vec<serde_json::Value>>,
) -> anyhow::Result<()> {
    use std::io::Write;
    let format = super::template::Format::parse(format);
    if format == super::template::Format::Json {
        let docs = serde_json::to_string_pretty(&json()?)?;
        // A closed reader is not an error of a listing.
        let _ = writeln!(std::io::stdout().lock(), "{docs}");
        return Ok(());
    }
    print!("{}", format.rows(default, headers, &rows()?)?);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::human_size;

    #[test]
    fn sizes() {
        assert_eq!(human_size(999), "999 B");
        assert_eq!(human_size(1000), "1 kB");
        assert_eq!(human_size(4_300_000), "4.300 MB");
    }
}
