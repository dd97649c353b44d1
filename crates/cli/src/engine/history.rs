//! `berth history IMAGE` (and `image history`): the image's layers from
//! its config's history, newest first, as `docker history` shows them.

use std::path::Path;

use anyhow::Result;
use clap::Args;
use serde_json::{json, Value};

use super::template::Format;
use super::views;

/// `history`.
#[derive(Debug, Args)]
pub struct HistoryArgs {
    /// Output: table, json, a Go template, or `table TEMPLATE`
    /// (example: `--format '{{.CreatedBy}} {{.Size}}'`).
    #[arg(long, default_value = "table")]
    pub format: String,
    /// Full commands and IDs.
    #[arg(long)]
    pub no_trunc: bool,
    /// Only the IDs.
    #[arg(short = 'q', long)]
    pub quiet: bool,
    /// Sizes in bytes instead of units (`-H=false`).
    #[arg(short = 'H', long, default_value_t = true, action = clap::ArgAction::Set)]
    pub human: bool,
    pub image: String,
}

/// One history entry with the size of the layer it made.
struct Entry {
    id: String,
    created: Option<i64>,
    created_by: String,
    size: u64,
    comment: String,
    empty: bool,
}

/// The entries, newest first: the newest is the image itself (its ID),
/// older ones are `<missing>` as in Docker (their images are not stored).
fn entries(root: &Path, name: &str, no_trunc: bool) -> Result<Vec<Entry>> {
    let store = super::images::open(root)?;
    let img = berth_image::image::resolve_name(&store, name)?;
    // Snapshot dirs, base layer first: one per non-empty history entry.
    let mut layers = img.lower_dirs(&store);
    layers.reverse();
    let mut layers = layers.into_iter();
    let mut out = Vec::new();
    let history: Vec<Value> = if img.config.history.is_empty() {
        // No history (e.g. `import`): one entry per layer.
        img.config
            .rootfs
            .diff_ids
            .iter()
            .map(|_| json!({"created": img.config.created}))
            .collect()
    } else {
        img.config.history.clone()
    };
    for h in &history {
        let empty = h["empty_layer"].as_bool().unwrap_or(false);
        let size = if empty {
            0
        } else {
            layers.next().map(|p| views::dir_size(&p)).unwrap_or(0)
        };
        out.push(Entry {
            id: "<missing>".into(),
            created: h["created"].as_str().and_then(views::parse_rfc3339_ms),
            created_by: h["created_by"].as_str().unwrap_or_default().to_string(),
            size,
            comment: h["comment"].as_str().unwrap_or_default().to_string(),
            empty,
        });
    }
    out.reverse();
    if let Some(first) = out.first_mut() {
        first.id = if no_trunc {
            img.record.id.to_string()
        } else {
            img.record.id.short().to_string()
        };
    }
    Ok(out)
}

/// `history`.
pub fn history(root: &Path, a: &HistoryArgs) -> Result<()> {
    let list = entries(root, &a.image, a.no_trunc)?;
    if a.quiet {
        for e in &list {
            println!("{}", e.id);
        }
        return Ok(());
    }
    let format = Format::parse(&a.format);
    if format == Format::Json {
        let v: Vec<Value> = list
            .iter()
            .map(|e| {
                json!({
                    "id": e.id,
                    "created": e.created.map(berth_engine::rfc3339_ms),
                    "createdBy": e.created_by,
                    "size": e.size,
                    "comment": e.comment,
                    "emptyLayer": e.empty,
                })
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(());
    }
    let now = berth_engine::now_ms();
    let rows: Vec<Value> = list
        .iter()
        .map(|e| {
            let by = e.created_by.replace(['\t', '\n'], " ");
            json!({
                "ID": e.id,
                "CreatedSince": e.created.map(|c| views::since(c, now)).unwrap_or_else(|| "N/A".into()),
                "CreatedAt": e.created.map(|c| format!("{}Z", &berth_engine::rfc3339_ms(c)[..19])).unwrap_or_default(),
                "CreatedBy": if a.no_trunc { by } else { views::ellipsis(&by, 45) },
                "Size": if a.human { views::si_size(e.size) } else { e.size.to_string() },
                "Comment": e.comment,
            })
        })
        .collect();
    let default = "{{.ID}}\t{{.CreatedSince}}\t{{.CreatedBy}}\t{{.Size}}\t{{.Comment}}";
    print!("{}", format.rows(default, views::HISTORY_HEADERS, &rows)?);
    Ok(())
}
