//! What a Scan asks DynamoDB for beyond "every item of the table": an index, a projection, a raw
//! filter, a timestamp window.
//!
//! `ScanSpec::expressions` turns these into one FilterExpression and ProjectionExpression with
//! their ExpressionAttributeNames/Values. Every attribute name goes through a placeholder, so
//! reserved words (`status`, `name`), dots and spaces in names just work; ddbsnap's own
//! placeholders start with `#ddbsnap_` / `:ddbsnap_`, which raw filters may not use.
//!
//! The timestamp window is applied twice. DynamoDB applies a coarse one (bounds widened to whole
//! seconds for text timestamps, because it compares strings: `...00.5Z` sorts before `...00Z`)
//! and also returns items whose attribute is missing or of another type; the conversion thread
//! then applies the exact window to parsed instants and counts the items it
//! excludes for a missing or unreadable timestamp, so none disappear unnoticed. A filtered Scan
//! still reads, and pays for, every item of the table: `items_scanned` and `consumed_rcu` in the
//! summary say so.

use std::collections::{BTreeMap, HashMap};

use aws_sdk_dynamodb::types::AttributeValue;
use chrono::{DateTime, NaiveDate, NaiveDateTime, TimeDelta, Timelike, Utc};
use serde::{Deserialize, Serialize};

use crate::convert::Rows;
use crate::convert::json::{from_json, value_to_json};
use crate::convert::number::Decimal;
use crate::convert::rows::Val;
use crate::error::{Error, Result};

/// How the timestamp attribute holds time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum TsFormat {
    /// S: ISO 8601 / RFC 3339 text in UTC (`2026-11-01T12:00:00Z`, `...12:00:00.123+00:00`).
    Iso,
    /// N: seconds since 1970-01-01 UTC (fractions allowed).
    EpochS,
    /// N: milliseconds since 1970-01-01 UTC.
    EpochMs,
}

impl std::fmt::Display for TsFormat {
    /// The name `--ts-format` takes (`iso`, `epoch-s`, `epoch-ms`).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        use clap::ValueEnum;
        match self.to_possible_value() {
            Some(v) => f.write_str(v.get_name()),
            None => Ok(()),
        }
    }
}

/// A half-open timestamp window on one attribute: `since <= t < until`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TimeFilter {
    /// Attribute holding the timestamp (top-level, name verbatim).
    pub attribute: String,
    /// How it holds time.
    pub format: TsFormat,
    /// Inclusive lower bound.
    pub since: Option<DateTime<Utc>>,
    /// Exclusive upper bound.
    pub until: Option<DateTime<Utc>>,
}

/// A user's FilterExpression with its names and values (values in DynamoDB JSON).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RawFilter {
    /// The FilterExpression.
    pub expression: String,
    /// ExpressionAttributeNames (`#s` → `status`).
    pub names: BTreeMap<String, String>,
    /// ExpressionAttributeValues (`:v` → `{"S":"active"}`).
    pub values: BTreeMap<String, serde_json::Value>,
}

impl RawFilter {
    /// Parse and check `--filter`, `--names` (a JSON object of strings) and `--values` (a JSON
    /// object of DynamoDB JSON values): every placeholder used is defined and every one defined
    /// is used, as DynamoDB requires.
    pub fn parse(expression: &str, names: Option<&str>, values: Option<&str>) -> Result<Self> {
        let expression = expression.trim();
        if expression.is_empty() {
            return Err(Error::invalid("--filter is empty"));
        }
        let names: BTreeMap<String, String> = match names {
            None => BTreeMap::new(),
            Some(text) => serde_json::from_str(text).map_err(|e| {
                Error::invalid(format!(
                    "--names must be a JSON object of strings like '{{\"#s\":\"status\"}}': {e}"
                ))
            })?,
        };
        let values: BTreeMap<String, serde_json::Value> = match values {
            None => BTreeMap::new(),
            Some(text) => serde_json::from_str(text).map_err(|e| {
                Error::invalid(format!(
                    "--values must be a JSON object of DynamoDB JSON values like \
                     '{{\":v\":{{\"S\":\"active\"}}}}': {e}"
                ))
            })?,
        };
        for (key, value) in &values {
            from_json(value).map_err(|e| {
                Error::invalid(format!("--values: {key} is not a DynamoDB JSON value: {e}"))
            })?;
        }
        let check = |sigil: char, defined: Vec<&String>, flag: &str| -> Result<()> {
            let used = placeholders(expression, sigil);
            for key in &defined {
                if !key.starts_with(sigil) || key.len() < 2 {
                    return Err(Error::invalid(format!(
                        "{flag}: '{key}' must start with '{sigil}'"
                    )));
                }
                if key.starts_with(&format!("{sigil}ddbsnap_")) {
                    return Err(Error::invalid(format!(
                        "{flag}: '{key}' uses the prefix ddbsnap reserves for its own names"
                    )));
                }
                if !used.contains(*key) {
                    return Err(Error::invalid(format!(
                        "{flag}: '{key}' is not used in --filter"
                    )));
                }
            }
            if let Some(missing) = used.iter().find(|u| !defined.contains(u)) {
                return Err(Error::invalid(format!(
                    "--filter uses '{missing}', which {flag} does not define"
                )));
            }
            Ok(())
        };
        check('#', names.keys().collect(), "--names")?;
        check(':', values.keys().collect(), "--values")?;
        Ok(RawFilter {
            expression: expression.to_owned(),
            names,
            values,
        })
    }
}

/// `#name` or `:value` placeholders in an expression.
fn placeholders(expression: &str, sigil: char) -> Vec<String> {
    let mut found = Vec::new();
    let mut chars = expression.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        if c != sigil {
            continue;
        }
        let mut end = i + c.len_utf8();
        while let Some(&(j, d)) = chars.peek() {
            if d.is_ascii_alphanumeric() || d == '_' {
                end = j + d.len_utf8();
                chars.next();
            } else {
                break;
            }
        }
        if end > i + 1 {
            let name = expression[i..end].to_owned();
            if !found.contains(&name) {
                found.push(name);
            }
        }
    }
    found
}

/// What to scan: the table or one of its indexes, which attributes, which items.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ScanSpec {
    /// Secondary index to scan instead of the table.
    pub index: Option<String>,
    /// Attributes to read (empty: all). Key attributes and the timestamp attribute are added.
    pub columns: Vec<String>,
    /// A raw FilterExpression.
    pub raw: Option<RawFilter>,
    /// A timestamp window.
    pub time: Option<TimeFilter>,
    /// `--skip-expired`: the table's TTL attribute, whose items in the past are left out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub skip_expired: Option<String>,
}

/// DynamoDB's Time to Live: an item whose TTL attribute (a Number, epoch seconds) is at or
/// before the cutoff has expired, yet Scan returns it until TTL deletes it, typically within
/// two days. Items without the attribute, or with another type, never expire.
#[derive(Debug, Clone)]
pub(crate) struct ExpiryCheck {
    attribute: String,
    cutoff: DateTime<Utc>,
}

impl ExpiryCheck {
    /// Expiry by `attribute` as of `cutoff` (the run's start, the same on every resume).
    pub(crate) fn new(attribute: &str, cutoff: DateTime<Utc>) -> Self {
        ExpiryCheck {
            attribute: attribute.to_owned(),
            cutoff,
        }
    }

    /// True when item `index` of `rows` had expired at the cutoff.
    pub(crate) fn expired(&self, rows: &Rows, index: usize) -> bool {
        match rows.get(index, &self.attribute) {
            Some(Val::N(n)) => {
                parse_epoch(rows.text(n), TsFormat::EpochS).is_some_and(|t| t <= self.cutoff)
            }
            _ => false,
        }
    }
}

/// The request parameters a [`ScanSpec`] turns into.
#[derive(Debug, Clone, Default)]
pub(crate) struct Expressions {
    pub(crate) filter: Option<String>,
    pub(crate) projection: Option<String>,
    pub(crate) names: Option<HashMap<String, String>>,
    pub(crate) values: Option<HashMap<String, AttributeValue>>,
}

impl ScanSpec {
    /// True when the spec reads every attribute of every item of the table.
    pub fn is_full_table(&self) -> bool {
        *self == ScanSpec::default()
    }

    /// The FilterExpression, ProjectionExpression, names and values for Scan requests.
    /// `keys` are the key attributes of what is scanned (always projected).
    pub(crate) fn expressions(&self, keys: &[String]) -> Result<Expressions> {
        let mut names: HashMap<String, String> = HashMap::new();
        let mut values: HashMap<String, AttributeValue> = HashMap::new();
        let mut filters = Vec::new();
        if let Some(raw) = &self.raw {
            names.extend(raw.names.clone());
            for (k, v) in &raw.values {
                values.insert(k.clone(), from_json(v)?);
            }
            filters.push(format!("({})", raw.expression));
        }
        if let Some(time) = &self.time {
            let (kind, since, until) = time.server_bounds();
            let mut window = Vec::new();
            if let Some(since) = since {
                values.insert(":ddbsnap_since".into(), since);
                window.push("#ddbsnap_t >= :ddbsnap_since");
            }
            if let Some(until) = until {
                values.insert(":ddbsnap_until".into(), until);
                window.push("#ddbsnap_t < :ddbsnap_until");
            }
            if !window.is_empty() {
                names.insert("#ddbsnap_t".into(), time.attribute.clone());
                // Items without a readable timestamp come back too, to be counted.
                values.insert(":ddbsnap_type".into(), AttributeValue::S(kind.into()));
                filters.push(format!(
                    "(({}) OR attribute_not_exists(#ddbsnap_t) OR NOT \
                     attribute_type(#ddbsnap_t, :ddbsnap_type))",
                    window.join(" AND ")
                ));
            }
        }
        let projection = if self.columns.is_empty() {
            None
        } else {
            let mut wanted: Vec<&str> = keys.iter().map(String::as_str).collect();
            wanted.extend(self.columns.iter().map(String::as_str));
            if let Some(time) = &self.time {
                wanted.push(&time.attribute);
            }
            if let Some(ttl) = &self.skip_expired {
                wanted.push(ttl);
            }
            let mut seen = std::collections::HashSet::new();
            wanted.retain(|c| seen.insert(*c));
            let mut parts = Vec::new();
            for (i, column) in wanted.iter().enumerate() {
                let placeholder = format!("#ddbsnap_c{i}");
                names.insert(placeholder.clone(), (*column).to_owned());
                parts.push(placeholder);
            }
            Some(parts.join(", "))
        };
        Ok(Expressions {
            filter: (!filters.is_empty()).then(|| filters.join(" AND ")),
            projection,
            names: (!names.is_empty()).then_some(names),
            values: (!values.is_empty()).then_some(values),
        })
    }
}

impl TimeFilter {
    /// The DynamoDB type of the attribute and the bounds DynamoDB compares against: exact for
    /// numbers; for text, widened to whole seconds and written without a zone, so that every
    /// UTC spelling of an instant in the window (`Z`, `+00:00`, any fraction) passes.
    fn server_bounds(&self) -> (&'static str, Option<AttributeValue>, Option<AttributeValue>) {
        match self.format {
            TsFormat::Iso => {
                let text =
                    |t: DateTime<Utc>| AttributeValue::S(t.format("%Y-%m-%dT%H:%M:%S").to_string());
                let ceil = |t: DateTime<Utc>| {
                    if t.nanosecond() == 0 {
                        t
                    } else {
                        t.with_nanosecond(0).unwrap_or(t) + TimeDelta::seconds(1)
                    }
                };
                (
                    "S",
                    self.since.map(|t| text(t.with_nanosecond(0).unwrap_or(t))),
                    self.until.map(|t| text(ceil(t))),
                )
            }
            TsFormat::EpochS | TsFormat::EpochMs => {
                let number = |t: DateTime<Utc>| AttributeValue::N(epoch_text(t, self.format));
                ("N", self.since.map(number), self.until.map(number))
            }
        }
    }

    /// The exact check the conversion thread applies.
    pub(crate) fn check(&self) -> TimeCheck {
        TimeCheck {
            filter: self.clone(),
            stats: WindowStats::default(),
        }
    }
}

/// `t` as exact epoch seconds or milliseconds text.
fn epoch_text(t: DateTime<Utc>, format: TsFormat) -> String {
    let nanos = t.timestamp() as i128 * 1_000_000_000 + t.timestamp_subsec_nanos() as i128;
    let (unit, digits) = match format {
        TsFormat::EpochMs => (1_000_000i128, 6),
        _ => (1_000_000_000i128, 9),
    };
    let (whole, frac) = (nanos.div_euclid(unit), nanos.rem_euclid(unit));
    if frac == 0 {
        whole.to_string()
    } else {
        let frac = format!("{frac:0digits$}");
        format!("{whole}.{}", frac.trim_end_matches('0'))
    }
}

/// Parse ISO 8601 / RFC 3339 text: with a zone, or without one (read as UTC), or a date alone
/// (midnight UTC).
pub fn parse_iso(text: &str) -> Option<DateTime<Utc>> {
    let text = text.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Some(t.with_timezone(&Utc));
    }
    for format in ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M:%S%.f"] {
        if let Ok(t) = NaiveDateTime::parse_from_str(text, format) {
            return Some(t.and_utc());
        }
    }
    NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|t| t.and_utc())
}

/// Parse epoch seconds or milliseconds text exactly (to the nanosecond).
pub fn parse_epoch(text: &str, format: TsFormat) -> Option<DateTime<Utc>> {
    let decimal = Decimal::parse(text)?;
    let nanos = match format {
        TsFormat::EpochMs => decimal.unscaled(6)?,
        _ => decimal.unscaled(9)?,
    };
    let secs = i64::try_from(nanos.div_euclid(1_000_000_000)).ok()?;
    DateTime::from_timestamp(secs, nanos.rem_euclid(1_000_000_000) as u32)
}

/// A `--since` / `--until` value: RFC 3339 (`2026-11-01T00:00:00Z`), a date (`2026-11-01`,
/// midnight UTC), or epoch seconds or milliseconds (a number; 100000000000 and above is
/// milliseconds).
pub fn parse_bound(text: &str, flag: &str) -> Result<DateTime<Utc>> {
    let bad = || {
        Error::invalid(format!(
            "{flag} '{text}' is not a time: use RFC 3339 (2026-11-01T00:00:00Z), a date \
             (2026-11-01) or epoch seconds or milliseconds"
        ))
    };
    if let Some(decimal) = Decimal::parse(text) {
        let format = if decimal.integer_digits() >= 12 {
            TsFormat::EpochMs
        } else {
            TsFormat::EpochS
        };
        return parse_epoch(text, format).ok_or_else(bad);
    }
    parse_iso(text).ok_or_else(bad)
}

/// What the exact window check saw.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct WindowStats {
    /// Items excluded because they do not have the attribute (or it is NULL).
    pub missing: u64,
    /// Items excluded because the attribute is not a timestamp in the expected format.
    pub invalid: u64,
    /// Items DynamoDB's coarse window let through that the exact window excludes.
    pub outside: u64,
    /// The latest timestamp among the items written, as stored (DynamoDB JSON) and as UTC.
    pub max_seen: Option<MaxSeen>,
}

impl WindowStats {
    /// Add what `other` saw (of other items): counts summed, the later of the latest
    /// timestamps.
    pub(crate) fn merge(&mut self, other: &WindowStats) {
        self.missing += other.missing;
        self.invalid += other.invalid;
        self.outside += other.outside;
        if let Some(seen) = &other.max_seen
            && self.max_seen.as_ref().is_none_or(|m| seen.time > m.time)
        {
            self.max_seen = Some(seen.clone());
        }
    }
}

/// The latest timestamp written.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MaxSeen {
    /// As an instant.
    pub time: DateTime<Utc>,
    /// As stored in the item (DynamoDB JSON).
    pub value: String,
}

/// The exact timestamp window, applied on the conversion thread.
#[derive(Debug, Clone)]
pub(crate) struct TimeCheck {
    filter: TimeFilter,
    pub(crate) stats: WindowStats,
}

impl TimeCheck {
    /// What the check saw since the last call (for one page's items), starting over.
    pub(crate) fn take_stats(&mut self) -> WindowStats {
        std::mem::take(&mut self.stats)
    }

    /// Keep item `index` of `rows` if its timestamp is in the window; count it otherwise.
    pub(crate) fn keep(&mut self, rows: &Rows, index: usize) -> bool {
        let f = &self.filter;
        let value = rows.get(index, &f.attribute);
        let time = match (value, f.format) {
            (None | Some(Val::Null), _) => {
                self.stats.missing += 1;
                return false;
            }
            (Some(Val::S(s)), TsFormat::Iso) => parse_iso(rows.text(s)),
            (Some(Val::N(n)), TsFormat::EpochS | TsFormat::EpochMs) => {
                parse_epoch(rows.text(n), f.format)
            }
            _ => None,
        };
        let Some(time) = time else {
            self.stats.invalid += 1;
            return false;
        };
        if f.since.is_some_and(|s| time < s) || f.until.is_some_and(|u| time >= u) {
            self.stats.outside += 1;
            return false;
        }
        if self.stats.max_seen.as_ref().is_none_or(|m| time > m.time) {
            self.stats.max_seen = Some(MaxSeen {
                time,
                value: value
                    .map(|v| value_to_json(&rows.to_value(v)).unwrap_or_default())
                    .unwrap_or_default(),
            });
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::convert::Item;

    /// Rows of one item.
    fn one(item: Item) -> Rows {
        Rows::from_items(&[item]).unwrap()
    }

    #[test]
    fn expiry_follows_the_ttl_number() {
        let cutoff = t("2026-12-01T00:00:00Z");
        let check = ExpiryCheck::new("ttl", cutoff);
        let with = |v: AttributeValue| Item::from([("ttl".to_owned(), v)]);
        let at = cutoff.timestamp();
        assert!(check.expired(&one(with(AttributeValue::N(at.to_string()))), 0));
        assert!(check.expired(&one(with(AttributeValue::N(format!("{}.5", at - 1)))), 0));
        assert!(!check.expired(&one(with(AttributeValue::N((at + 1).to_string()))), 0));
        assert!(!check.expired(&one(with(AttributeValue::S(at.to_string()))), 0));
        assert!(!check.expired(&one(with(AttributeValue::N("not a number".into()))), 0));
        assert!(!check.expired(&one(Item::new()), 0));
    }

    fn t(text: &str) -> DateTime<Utc> {
        parse_iso(text).unwrap()
    }

    #[test]
    fn parses_bounds() {
        assert_eq!(
            parse_bound("2026-11-01T00:00:00Z", "--since").unwrap(),
            t("2026-11-01T00:00:00Z")
        );
        assert_eq!(
            parse_bound("2026-11-01", "--since").unwrap(),
            t("2026-11-01T00:00:00Z")
        );
        assert_eq!(
            parse_bound("2026-11-01T01:00:00+01:00", "--since").unwrap(),
            t("2026-11-01T00:00:00Z")
        );
        assert_eq!(
            parse_bound("1762000000", "--since").unwrap(),
            DateTime::from_timestamp(1_762_000_000, 0).unwrap()
        );
        assert_eq!(
            parse_bound("1762000000123", "--since").unwrap(),
            DateTime::from_timestamp(1_762_000_000, 123_000_000).unwrap()
        );
        assert_eq!(
            parse_bound("1762000000.5", "--since").unwrap(),
            DateTime::from_timestamp(1_762_000_000, 500_000_000).unwrap()
        );
        for bad in ["yesterday", "2026-13-01", "", "12:00"] {
            assert!(parse_bound(bad, "--since").is_err(), "{bad}");
        }
    }

    #[test]
    fn epoch_text_is_exact() {
        let x = DateTime::from_timestamp(1_762_000_000, 120_000_000).unwrap();
        assert_eq!(epoch_text(x, TsFormat::EpochS), "1762000000.12");
        assert_eq!(epoch_text(x, TsFormat::EpochMs), "1762000000120");
        let y = DateTime::from_timestamp(1_762_000_000, 1).unwrap();
        assert_eq!(epoch_text(y, TsFormat::EpochMs), "1762000000000.000001");
        assert_eq!(parse_epoch("1762000000.12", TsFormat::EpochS), Some(x));
        assert_eq!(parse_epoch("1762000000120", TsFormat::EpochMs), Some(x));
    }

    #[test]
    fn text_bounds_are_widened_to_whole_seconds() {
        let f = TimeFilter {
            attribute: "ts".into(),
            format: TsFormat::Iso,
            since: Some(t("2026-11-01T00:00:00.5Z")),
            until: Some(t("2026-11-02T00:00:00.25Z")),
        };
        let (kind, since, until) = f.server_bounds();
        assert_eq!(kind, "S");
        assert_eq!(since, Some(AttributeValue::S("2026-11-01T00:00:00".into())));
        assert_eq!(until, Some(AttributeValue::S("2026-11-02T00:00:01".into())));
        // The exact check then decides.
        let mut check = f.check();
        let item = |v: &str| Item::from([("ts".to_owned(), AttributeValue::S(v.into()))]);
        assert!(!check.keep(&one(item("2026-11-01T00:00:00Z")), 0));
        assert!(check.keep(&one(item("2026-11-01T00:00:00.500Z")), 0));
        assert!(check.keep(&one(item("2026-11-02T00:00:00.249+00:00")), 0));
        assert!(!check.keep(&one(item("2026-11-02T00:00:00.25Z")), 0));
        assert!(!check.keep(&one(item("not a time")), 0));
        assert!(!check.keep(&one(Item::new()), 0));
        assert_eq!(
            (
                check.stats.missing,
                check.stats.invalid,
                check.stats.outside
            ),
            (1, 1, 2)
        );
        assert_eq!(
            check.stats.max_seen.unwrap().value,
            r#"{"S":"2026-11-02T00:00:00.249+00:00"}"#
        );
    }

    #[test]
    fn raw_filters_are_checked() {
        let ok = RawFilter::parse(
            "#s = :v AND size(#n) > :z",
            Some(r##"{"#s":"status","#n":"name"}"##),
            Some(r#"{":v":{"S":"active"},":z":{"N":"0"}}"#),
        )
        .unwrap();
        assert_eq!(ok.names.len(), 2);
        let err = |e: &str, n: Option<&str>, v: Option<&str>| {
            RawFilter::parse(e, n, v).unwrap_err().to_string()
        };
        assert!(err("#s = :v", None, Some(r#"{":v":{"S":"a"}}"#)).contains("'#s'"));
        assert!(err("a = :v", None, None).contains("':v'"));
        assert!(err("a = :v", None, Some(r#"{":v":{"X":"a"}}"#)).contains("DynamoDB JSON"));
        assert!(
            err("a = :v", None, Some(r#"{":v":{"S":"a"},":w":{"S":"b"}}"#)).contains("not used")
        );
        assert!(err("a = :v", None, Some("[1]")).contains("JSON object"));
        assert!(
            err(
                "#ddbsnap_t = :v",
                Some(r##"{"#ddbsnap_t":"x"}"##),
                Some(r#"{":v":{"S":"a"}}"#)
            )
            .contains("reserves")
        );
    }

    #[test]
    fn expressions_escape_every_name() {
        let spec = ScanSpec {
            columns: vec!["status".into(), "a.b".into(), "pk".into()],
            time: Some(TimeFilter {
                attribute: "updated at".into(),
                format: TsFormat::EpochS,
                since: Some(DateTime::from_timestamp(10, 0).unwrap()),
                until: None,
            }),
            ..Default::default()
        };
        let e = spec.expressions(&["pk".into()]).unwrap();
        assert_eq!(
            e.projection.as_deref(),
            Some("#ddbsnap_c0, #ddbsnap_c1, #ddbsnap_c2, #ddbsnap_c3")
        );
        let names = e.names.unwrap();
        assert_eq!(names["#ddbsnap_c0"], "pk");
        assert_eq!(names["#ddbsnap_c2"], "a.b");
        assert_eq!(names["#ddbsnap_c3"], "updated at");
        assert!(e.filter.unwrap().contains("#ddbsnap_t >= :ddbsnap_since"));
        assert_eq!(
            e.values.unwrap()[":ddbsnap_since"],
            AttributeValue::N("10".into())
        );
    }
}
