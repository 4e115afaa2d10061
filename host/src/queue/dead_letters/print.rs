//! What the `dlq` commands print: a table or JSON for a listing, one dead
//! letter in full, what a redrive or purge did. The model and its passes
//! over the queues are in [`super`]; this is only their presentation, made
//! safe for a terminal (the text is a producer's: control characters are
//! shown escaped).

use std::time::Duration;

use crate::support::utc;

use super::super::{Attribute, AttributeData};
use super::{
    DeadLetters, LISTED_REASON_CHARS, LISTED_VERSION_DIGITS, Letter, Listing, NO_REASON,
    RECEIVE_BOUND, Selection, now_ms,
};

impl DeadLetters {
    /// `dlq list`: a table for people, or a JSON array for tools.
    pub async fn print_list(&self, only: Option<&str>, json: bool) -> anyhow::Result<()> {
        let listings = self.list(only).await?;
        let now = now_ms();
        if json {
            let all: Vec<serde_json::Value> = listings
                .iter()
                .flat_map(|listing| {
                    listing
                        .letters
                        .iter()
                        .map(move |letter| letter_json(listing, letter, now))
                })
                .collect();
            println!("{}", serde_json::to_string_pretty(&all)?);
            return Ok(());
        }
        for listing in &listings {
            let count = listing.letters.len();
            println!(
                "{} ({}): {}{count} dead letter{}",
                listing.queue,
                listing.dead_letter_queue,
                if listing.bounded { "the first " } else { "" },
                if count == 1 { "" } else { "s" },
            );
            if count == 0 {
                continue;
            }
            println!(
                "  {:<36}  {:>8}  {:>8}  {:<12}  REASON",
                "ID", "AGE", "RECEIVES", "LOGIC"
            );
            for letter in &listing.letters {
                let metadata = letter.metadata.as_ref();
                println!(
                    "  {:<36}  {:>8}  {:>8}  {:<12}  {}",
                    printable(&letter.id, false),
                    age(letter.age(now)),
                    metadata
                        .and_then(|m| m.receive_count)
                        .map_or_else(|| "-".to_string(), |n| n.to_string()),
                    metadata
                        .and_then(|m| m.logic_version.as_deref())
                        .map_or_else(
                            || "-".to_string(),
                            |v| printable(
                                &v.chars().take(LISTED_VERSION_DIGITS).collect::<String>(),
                                false
                            )
                        ),
                    match letter.reason() {
                        Some(reason) => printable(&cut(reason, LISTED_REASON_CHARS), false),
                        None => NO_REASON.to_string(),
                    }
                );
            }
        }
        Ok(())
    }

    /// `dlq show ID`: every metadata field, the producer's attributes and
    /// the body (pretty when JSON).
    pub async fn print_show(&self, id: &str, only: Option<&str>, json: bool) -> anyhow::Result<()> {
        let (listing, letter) = self.find(id, only).await?;
        let now = now_ms();
        if json {
            let mut value = letter_json(&listing, &letter, now);
            value["attributes"] = attributes_json(&letter.attributes);
            value["body"] = serde_json::Value::String(letter.body.clone());
            println!("{}", serde_json::to_string_pretty(&value)?);
            return Ok(());
        }
        println!(
            "dead letter {} in {} (queue {})",
            printable(&letter.id, false),
            listing.dead_letter_queue,
            listing.queue
        );
        let field = |name: &str, value: String| println!("  {name:<18} {value}");
        match &letter.metadata {
            Some(metadata) => {
                let text = |v: &Option<String>| {
                    v.as_deref()
                        .map_or_else(|| "-".to_string(), |t| printable(t, false))
                };
                field("reason", text(&metadata.reason));
                field("source queue", text(&metadata.source_queue));
                field("original id", text(&metadata.message_id));
                field("logic version", text(&metadata.logic_version));
                field(
                    "receive count",
                    metadata
                        .receive_count
                        .map_or_else(|| "-".to_string(), |n| n.to_string()),
                );
                field("deferrals", metadata.deferrals.to_string());
                field(
                    "dead-lettered at",
                    metadata.dead_lettered_at.map_or_else(
                        || "-".to_string(),
                        |at| format!("{} ({} ago)", utc(at, false), age(letter.age(now))),
                    ),
                );
            }
            None => {
                field("reason", NO_REASON.to_string());
                field(
                    "sent at",
                    format!(
                        "{} ({} ago)",
                        utc(letter.sent_at_ms, false),
                        age(letter.age(now))
                    ),
                );
            }
        }
        println!("attributes ({})", letter.attributes.len());
        let width = letter
            .attributes
            .iter()
            .map(|(name, _)| name.len())
            .max()
            .unwrap_or(0);
        for (name, attribute) in &letter.attributes {
            let value = match &attribute.value {
                AttributeData::Text(text) => printable(text, false),
                AttributeData::Binary(blob) => {
                    format!("{} (base64 of {} bytes)", base64_of(blob), blob.len())
                }
            };
            println!(
                "  {:<width$}  {:<14}  {value}",
                printable(name, false),
                printable(&attribute.data_type, false)
            );
        }
        println!("body");
        let body = match serde_json::from_str::<serde_json::Value>(&letter.body) {
            Ok(parsed) => serde_json::to_string_pretty(&parsed)?,
            Err(_) => letter.body.clone(),
        };
        for line in printable(&body, true).lines() {
            println!("  {line}");
        }
        Ok(())
    }

    /// `dlq redrive`: how many moved, and why any did not.
    pub async fn print_redrive(
        &self,
        only: Option<&str>,
        selection: Selection<'_>,
    ) -> anyhow::Result<()> {
        let report = self.redrive(only, selection).await?;
        println!(
            "moved {} dead letter{} back",
            report.moved.len(),
            if report.moved.len() == 1 { "" } else { "s" }
        );
        for (id, queue, new_id) in &report.moved {
            println!("  {id} -> {queue} as {new_id}");
        }
        if report.bounded {
            println!(
                "a dead-letter queue holds more than the {RECEIVE_BOUND} one pass takes: run it again"
            );
        }
        let mut problems = Vec::new();
        for (id, why) in &report.failed {
            problems.push(format!(
                "{id}: not sent, left in the dead-letter queue: {why}"
            ));
        }
        for (id, why) in &report.not_removed {
            problems.push(format!(
                "{id}: sent back but not deleted from the dead-letter queue ({why}); purge or \
                 delete it before another redrive, which would send it again"
            ));
        }
        for id in &report.not_found {
            problems.push(format!("{id}: no such dead letter"));
        }
        if problems.is_empty() {
            Ok(())
        } else {
            anyhow::bail!("{}", problems.join("\n"))
        }
    }

    /// `dlq purge`: refused without `yes`, saying how many there are.
    pub async fn print_purge(&self, only: Option<&str>, yes: bool) -> anyhow::Result<()> {
        if !yes {
            let counts = self.count(only).await?;
            let total: u64 = counts.iter().map(|(_, _, n)| n).sum();
            anyhow::bail!(
                "refused without --yes: there {} {total} dead letter{} ({}); nothing deleted",
                if total == 1 { "is" } else { "are" },
                if total == 1 { "" } else { "s" },
                counts
                    .iter()
                    .map(|(queue, dead_letter_queue, n)| format!(
                        "{queue}: {n} in {dead_letter_queue}"
                    ))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
        for (queue, dead_letter_queue, deleted) in self.purge(only).await? {
            println!(
                "{queue} ({dead_letter_queue}): deleted {deleted} dead letter{}",
                if deleted == 1 { "" } else { "s" }
            );
        }
        Ok(())
    }
}

fn letter_json(listing: &Listing, letter: &Letter, now_ms: u64) -> serde_json::Value {
    serde_json::json!({
        "queue": listing.queue,
        "deadLetterQueue": listing.dead_letter_queue,
        "id": letter.id,
        "sentAtMs": letter.sent_at_ms,
        "ageMs": letter.age(now_ms).as_millis() as u64,
        "metadata": letter.metadata,
    })
}

/// Attributes as SQS names their parts: name → `{"dataType", "stringValue"}`
/// or `{"dataType", "binaryValue"}` (base64).
fn attributes_json(attributes: &[(String, Attribute)]) -> serde_json::Value {
    attributes
        .iter()
        .map(|(name, attribute)| {
            let value = match &attribute.value {
                AttributeData::Text(text) => {
                    serde_json::json!({ "dataType": attribute.data_type, "stringValue": text })
                }
                AttributeData::Binary(blob) => {
                    serde_json::json!({ "dataType": attribute.data_type, "binaryValue": base64_of(blob) })
                }
            };
            (name.clone(), value)
        })
        .collect::<serde_json::Map<_, _>>()
        .into()
}

fn base64_of(blob: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(blob)
}

/// At most `limit` characters, with `…` when cut.
fn cut(text: &str, limit: usize) -> String {
    let mut chars = text.chars();
    let head: String = chars.by_ref().take(limit).collect();
    if chars.next().is_some() {
        format!("{head}…")
    } else {
        head
    }
}

/// Text from a producer or a dependency, safe to print on a terminal:
/// control characters (line breaks too, unless `keep_lines`), bidi controls
/// and zero-width characters shown as `\u{..}` escapes instead of acting.
fn printable(text: &str, keep_lines: bool) -> String {
    let mut shown = String::with_capacity(text.len());
    for c in text.chars() {
        let acts = c.is_control()
            || matches!(c, '\u{200b}'..='\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2060}'..='\u{2069}' | '\u{feff}');
        if acts && !(keep_lines && (c == '\n' || c == '\t')) {
            shown.push_str(&c.escape_unicode().to_string());
        } else {
            shown.push(c);
        }
    }
    shown
}

/// An age as people read it: `45s`, `12m 3s`, `5h 2m`, `3d 4h`.
fn age(age: Duration) -> String {
    let seconds = age.as_secs();
    match seconds {
        0..60 => format!("{seconds}s"),
        60..3_600 => format!("{}m {}s", seconds / 60, seconds % 60),
        3_600..86_400 => format!("{}h {}m", seconds / 3_600, seconds % 3_600 / 60),
        _ => format!("{}d {}h", seconds / 86_400, seconds % 86_400 / 3_600),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_and_ages_read_as_people_write_them() {
        assert_eq!(utc(0, false), "1970-01-01T00:00:00Z");
        assert_eq!(utc(951_782_400_000, false), "2000-02-29T00:00:00Z");
        assert_eq!(utc(1_795_866_300_500, false), "2026-11-28T11:45:00Z");
        assert_eq!(age(Duration::from_secs(59)), "59s");
        assert_eq!(age(Duration::from_secs(3_599)), "59m 59s");
        assert_eq!(age(Duration::from_secs(7_260)), "2h 1m");
        assert_eq!(age(Duration::from_secs(3 * 86_400 + 4 * 3_600)), "3d 4h");
    }

    #[test]
    fn printed_text_cannot_steer_the_terminal() {
        assert_eq!(printable("a\u{1b}[2Jb", false), "a\\u{1b}[2Jb");
        assert_eq!(printable("x\u{202e}y\nz", false), "x\\u{202e}y\\u{a}z");
        assert_eq!(printable("{\n\t\"a\": 1\n}", true), "{\n\t\"a\": 1\n}");
        assert_eq!(cut("abcdef", 3), "abc…");
        assert_eq!(cut("abc", 3), "abc");
    }
}
