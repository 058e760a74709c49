//! What the CLI prints: plain-text tables (comfy-table: a header row, columns aligned by their
//! widest cell, two spaces between columns, no borders, never wrapped, so the output stays easy
//! to read and to `grep`/`awk`), pretty JSON, the key table of `key list` (the same for the local data
//! directory and for `--server`), and times.

use anyhow::Result;
use comfy_table::{presets, ContentArrangement, Table};
use keyward_client::Key;

/// Prints `header` and `rows` as a table on stdout.
pub(crate) fn table<R: IntoIterator<Item = String>>(
    header: &[&str],
    rows: impl IntoIterator<Item = R>,
) {
    let mut t = Table::new();
    t.load_preset(presets::NOTHING)
        .set_content_arrangement(ContentArrangement::Disabled)
        .set_header(header.iter().copied());
    for row in rows {
        t.add_row(row.into_iter().collect::<Vec<String>>());
    }
    for column in t.column_iter_mut() {
        column.set_padding((0, 2));
    }
    for line in t.lines() {
        println!("{}", line.trim_end());
    }
}

/// Prints `v` as pretty JSON on stdout, its fields in their declared order.
pub(crate) fn json(v: &impl serde::Serialize) -> Result<()> {
    println!("{}", serde_json::to_string_pretty(v)?);
    Ok(())
}

/// Prints `v` (an API type) as pretty JSON on stdout with every object's keys sorted, as the
/// remote commands print the API's answers.
pub(crate) fn json_sorted<T: serde::Serialize + ?Sized>(v: &T) -> Result<()> {
    json(&serde_json::to_value(v)?)
}

/// The usage attributes the `key list` table shows when true, in order.
pub(crate) const KEY_FLAGS: &[&str] = &[
    "sign",
    "verify",
    "encrypt",
    "decrypt",
    "wrap",
    "unwrap",
    "derive",
    "extractable",
];

/// One row of the key table: what both `key list`s show of a key object.
pub(crate) struct KeyRow {
    pub(crate) handle: u64,
    pub(crate) class: String,
    pub(crate) spec: String,
    pub(crate) linked_handle: Option<u64>,
    pub(crate) owner: String,
    /// The names among [`KEY_FLAGS`] whose attribute is true, in that order.
    pub(crate) flags: Vec<&'static str>,
    pub(crate) label: String,
}

impl KeyRow {
    /// The row of `k`. The attributes are read by name from the API type's JSON form, so a new
    /// attribute needs no change here.
    pub(crate) fn new(k: &Key) -> Result<Self> {
        let attributes = serde_json::to_value(&k.attributes)?;
        Ok(KeyRow {
            handle: k.handle,
            class: k.class.to_string(),
            spec: k.spec.to_string(),
            linked_handle: k.linked_handle,
            owner: k.owner.clone(),
            flags: KEY_FLAGS
                .iter()
                .copied()
                .filter(|name| attributes.get(*name) == Some(&serde_json::Value::Bool(true)))
                .collect(),
            label: k.attributes.label.clone(),
        })
    }
}

/// Prints the key table: HANDLE, CLASS, TYPE, LINKED, OWNER, ATTRIBUTES, LABEL.
pub(crate) fn key_table(rows: impl IntoIterator<Item = KeyRow>) {
    table(
        &[
            "HANDLE",
            "CLASS",
            "TYPE",
            "LINKED",
            "OWNER",
            "ATTRIBUTES",
            "LABEL",
        ],
        rows.into_iter().map(|k| {
            vec![
                k.handle.to_string(),
                k.class,
                k.spec,
                k.linked_handle.map(|h| h.to_string()).unwrap_or_default(),
                k.owner,
                k.flags.join(","),
                k.label,
            ]
        }),
    );
}

/// `ms` since the Unix epoch as RFC 3339 UTC, to the second.
pub(crate) fn utc(ms: u64) -> String {
    let secs = i64::try_from(ms / 1000).unwrap_or(i64::MAX);
    time::OffsetDateTime::from_unix_timestamp(secs)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| format!("{ms} ms"))
}
