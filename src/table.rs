//! Plain-text tables for the CLI's listings (comfy-table): a header row, columns aligned by
//! their widest cell, two spaces between columns, no borders, never wrapped, so the output
//! stays easy to read and to `grep`/`awk`.

use comfy_table::{presets, ContentArrangement, Table};

/// Prints `header` and `rows` as a table on stdout.
pub(crate) fn print<R: IntoIterator<Item = String>>(
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
