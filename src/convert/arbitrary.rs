//! Random DynamoDB items for property tests: every type, nesting to 32 levels, numbers across
//! DynamoDB's whole range and precision (38 digits, 1E-130 to 9.99E+125), binary, sets, empty
//! strings, unicode and attribute names that differ only in case; and the comparison that says
//! two items hold the same data as DynamoDB defines it.

use std::collections::BTreeSet;

use aws_sdk_dynamodb::primitives::Blob;
use aws_sdk_dynamodb::types::AttributeValue as AV;
use proptest::collection::{btree_set, hash_map, vec};
use proptest::prelude::*;

use super::Item;

/// A number as DynamoDB accepts it: 1 to 38 significant digits, magnitude from 1E-130 to
/// 9.99...E+125, written plainly or with an exponent.
pub(crate) fn number() -> impl Strategy<Value = String> {
    (
        any::<bool>(),
        "[1-9][0-9]{0,37}",
        -130i32..=88,
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(|(negative, digits, exponent, scientific, zero)| {
            if zero {
                return "0".to_owned();
            }
            // value = digits × 10^exponent; the largest is below 10^126.
            let sign = if negative { "-" } else { "" };
            if scientific {
                format!("{sign}{digits}E{exponent}")
            } else if exponent >= 0 {
                format!("{sign}{digits}{}", "0".repeat(exponent as usize))
            } else {
                let shift = (-exponent) as usize;
                let padded = format!("{}{digits}", "0".repeat(shift.saturating_sub(digits.len())));
                let (int, frac) = padded.split_at(padded.len() - shift);
                let int = if int.is_empty() { "0" } else { int };
                format!("{sign}{int}.{frac}")
            }
        })
}

/// Attribute names: short, so that items share and collide on them, in both cases and beyond
/// ASCII.
fn name() -> impl Strategy<Value = String> {
    "[aAbBé_. ]{1,3}"
}

fn leaf() -> impl Strategy<Value = AV> {
    prop_oneof![
        any::<String>().prop_map(AV::S),
        Just(AV::S(String::new())),
        number().prop_map(AV::N),
        vec(any::<u8>(), 0..24).prop_map(|b| AV::B(Blob::new(b))),
        any::<bool>().prop_map(AV::Bool),
        Just(AV::Null(true)),
        btree_set(any::<String>(), 1..4).prop_map(|s| AV::Ss(s.into_iter().collect())),
        btree_set(number(), 1..4).prop_map(|s| AV::Ns(distinct_numbers(s))),
        btree_set(vec(any::<u8>(), 0..8), 1..4)
            .prop_map(|s| AV::Bs(s.into_iter().map(Blob::new).collect())),
    ]
}

/// A number set holds each value once (`1` and `1.0` are one number).
fn distinct_numbers(numbers: BTreeSet<String>) -> Vec<String> {
    let mut seen = BTreeSet::new();
    numbers
        .into_iter()
        .filter(|n| seen.insert(canonical(n)))
        .collect()
}

/// Any attribute value, lists and maps nested up to 32 levels.
pub(crate) fn value() -> impl Strategy<Value = AV> {
    leaf().prop_recursive(32, 96, 4, |inner| {
        prop_oneof![
            vec(inner.clone(), 0..4).prop_map(AV::L),
            hash_map(name(), inner, 0..4).prop_map(AV::M),
        ]
    })
}

/// An item: a string key `pk` and a few other attributes.
pub(crate) fn item() -> impl Strategy<Value = Item> {
    ("[a-z0-9]{1,8}", hash_map(name(), value(), 0..6)).prop_map(|(pk, mut item)| {
        item.insert("pk".to_owned(), AV::S(pk));
        item
    })
}

/// A number's exact value: sign, significant digits, exponent.
fn canonical(n: &str) -> (bool, String, i64) {
    let (negative, n) = match n.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, n),
    };
    let (mantissa, exponent) = match n.split_once(['e', 'E']) {
        Some((m, e)) => (m, e.parse::<i64>().expect("an exponent")),
        None => (n, 0),
    };
    let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let digits = format!("{int}{frac}");
    let exponent = exponent - frac.len() as i64;
    let trimmed = digits.trim_start_matches('0');
    if trimmed.is_empty() {
        return (false, "0".to_owned(), 0);
    }
    let significant = trimmed.trim_end_matches('0');
    let exponent = exponent + (trimmed.len() - significant.len()) as i64;
    (negative, significant.to_owned(), exponent)
}

/// `item` as DynamoDB defines its data: NULL in a map or at the top level is the same as
/// absent (a snapshot reads it back so), sets are unordered, numbers are values.
pub(crate) fn normalized(item: &Item) -> Vec<(String, String)> {
    let mut pairs: Vec<(String, String)> = item
        .iter()
        .filter(|(_, v)| !matches!(v, AV::Null(_)))
        .map(|(k, v)| (k.clone(), norm(v)))
        .collect();
    pairs.sort();
    pairs
}

fn norm(v: &AV) -> String {
    match v {
        AV::S(s) => format!("S{s:?}"),
        AV::N(n) => format!("N{:?}", canonical(n)),
        AV::B(b) => format!("B{:?}", b.as_ref()),
        AV::Bool(b) => format!("BOOL{b}"),
        AV::Null(_) => "NULL".to_owned(),
        AV::Ss(s) => format!("SS{:?}", s.iter().collect::<BTreeSet<_>>()),
        AV::Ns(s) => format!(
            "NS{:?}",
            s.iter().map(|n| canonical(n)).collect::<BTreeSet<_>>()
        ),
        AV::Bs(s) => format!(
            "BS{:?}",
            s.iter().map(|b| b.as_ref()).collect::<BTreeSet<_>>()
        ),
        AV::L(l) => format!("L[{}]", l.iter().map(norm).collect::<Vec<_>>().join(",")),
        AV::M(m) => {
            let mut fields: Vec<String> = m
                .iter()
                .filter(|(_, v)| !matches!(v, AV::Null(_)))
                .map(|(k, v)| format!("{k:?}:{}", norm(v)))
                .collect();
            fields.sort();
            format!("M{{{}}}", fields.join(","))
        }
        other => format!("{other:?}"),
    }
}
