//! What the commands print: for people by default (times a person reads,
//! tables with headers, right plurals), and with `--json` for machines.
//! The JSON is the stable interface (docs/operations.md, "Output for people and for scripts"); the human text
//! may change between releases, so scripts and tests read `--json`.

use serde::Serialize;

pub use crate::support::plural;

/// One JSON document on standard output, pretty-printed.
pub fn print_json(value: &impl Serialize) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

/// Rows under a header, each column as wide as its widest cell; the last
/// column is not padded (it may be long).
pub struct Table {
    header: Vec<&'static str>,
    rows: Vec<Vec<String>>,
}

impl Table {
    pub fn new(header: &[&'static str]) -> Self {
        Self {
            header: header.to_vec(),
            rows: Vec::new(),
        }
    }

    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// The table as lines of text.
    pub fn lines(&self) -> Vec<String> {
        let mut widths: Vec<usize> = self.header.iter().map(|h| h.chars().count()).collect();
        for row in &self.rows {
            for (column, cell) in row.iter().enumerate() {
                if let Some(width) = widths.get_mut(column) {
                    *width = (*width).max(cell.chars().count());
                }
            }
        }
        let line = |cells: Vec<&str>| {
            let last = cells.len().saturating_sub(1);
            let padded: Vec<String> = cells
                .iter()
                .enumerate()
                .map(|(column, cell)| match column == last {
                    true => cell.to_string(),
                    false => format!("{cell:<width$}", width = widths[column]),
                })
                .collect();
            padded.join("  ").trim_end().to_string()
        };
        std::iter::once(line(self.header.clone()))
            .chain(
                self.rows
                    .iter()
                    .map(|row| line(row.iter().map(String::as_str).collect())),
            )
            .collect()
    }

    pub fn print(&self) {
        for line in self.lines() {
            println!("{line}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_table_aligns_its_columns_under_the_header() {
        let mut table = Table::new(&["ID", "TAG", "ROLE"]);
        table.row(vec!["abc".into(), "-".into(), "active".into()]);
        table.row(vec!["a".into(), "release-2".into(), "".into()]);
        assert_eq!(
            table.lines(),
            [
                "ID   TAG        ROLE",
                "abc  -          active",
                "a    release-2",
            ]
        );
    }
}
