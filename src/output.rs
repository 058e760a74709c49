//! What the CLI prints: plain-text tables (comfy-table: a header row, columns aligned by their
//! widest cell, two spaces between columns, no borders, never wrapped, so the output stays easy
//! to read and to `grep`/`awk`), pretty JSON, the key table shared by the local and the remote
//! `key list`, and times.

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

/// The usage attributes the remote `key list` table shows when true, in order.
pub(crate) const REMOTE_FLAGS: &[&str] = &[
    "sign",
    "verify",
    "encrypt",
    "decrypt",
    "wrap",
    "unwrap",
    "derive",
    "extractable",
];

/// The attributes the local `key list` table shows when true (the proxy's TLS keys).
pub(crate) const LOCAL_FLAGS: &[&str] = &["sign", "verify", "extractable"];

/// One row of the key table: what both `key list`s show of a key object.
pub(crate) struct KeyRow {
    pub(crate) handle: u64,
    pub(crate) class: String,
    pub(crate) spec: String,
    pub(crate) linked_handle: Option<u64>,
    /// The owner, where the listing knows it (the API's; the local store lists the proxy's
    /// keys, and its table has no OWNER column).
    pub(crate) owner: Option<String>,
    /// The attributes among the table's flags that are true, in the table's order.
    pub(crate) flags: Vec<&'static str>,
    pub(crate) label: String,
}

impl KeyRow {
    /// The row of `k`, with the names of `flags` whose attribute is true. The attributes are
    /// read by name from the API type's JSON form, so a new attribute needs no change here.
    pub(crate) fn new(k: &Key, owner: bool, flags: &[&'static str]) -> Result<Self> {
        let attributes = serde_json::to_value(&k.attributes)?;
        Ok(KeyRow {
            handle: k.handle,
            class: k.class.to_string(),
            spec: k.spec.to_string(),
            linked_handle: k.linked_handle,
            owner: owner.then(|| k.owner.clone()),
            flags: flags
                .iter()
                .copied()
                .filter(|name| attributes.get(*name) == Some(&serde_json::Value::Bool(true)))
                .collect(),
            label: k.attributes.label.clone(),
        })
    }
}

/// Prints the key table: HANDLE, CLASS, TYPE, LINKED, \[OWNER,\] ATTRIBUTES, LABEL; the OWNER
/// column when the rows have owners (`with_owner`).
pub(crate) fn key_table(rows: impl IntoIterator<Item = KeyRow>, with_owner: bool) {
    let header: &[&str] = if with_owner {
        &[
            "HANDLE",
            "CLASS",
            "TYPE",
            "LINKED",
            "OWNER",
            "ATTRIBUTES",
            "LABEL",
        ]
    } else {
        &["HANDLE", "CLASS", "TYPE", "LINKED", "ATTRIBUTES", "LABEL"]
    };
    table(
        header,
        rows.into_iter().map(|k| {
            let mut row = vec![
                k.handle.to_string(),
                k.class,
                k.spec,
                k.linked_handle.map(|h| h.to_string()).unwrap_or_default(),
            ];
            if with_owner {
                row.push(k.owner.unwrap_or_default());
            }
            row.push(k.flags.join(","));
            row.push(k.label);
            row
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
